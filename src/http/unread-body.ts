// Answers given before the request's body was read (a bad name, a refused write, a request HTTP
// cannot parse). A socket closed with bytes still unread makes the kernel send a reset, and a client
// still sending its body then loses the answer it was sent. So the rest of the body is read and
// dropped, within bounds, and a connection that must close is closed only once that is done
// (a lingering close, as nginx and Apache do it).
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

/**
 * How much of a body nobody wants is read before the connection is cut: enough for the clients that
 * send their whole body before they look at the answer, bounded so a client cannot keep the
 * registry reading for ever.
 */
export const UNREAD_BODY_LIMITS = { bytes: 64 * 1024 * 1024, ms: 10_000 } as const;

/**
 * Whether the request still has body bytes on the way, once its answer is ready: a handler that
 * answers has read all it wanted (or stopped at a bound, leaving the stream paused).
 */
export function hasUnreadBody(raw: IncomingMessage): boolean {
  return !raw.complete && !raw.destroyed;
}

/**
 * Reads and drops the rest of the body. Resolves true once it has ended, false when the limits ran
 * out first or the connection went away; past the limits, the connection is destroyed once `answered`
 * resolves (at once if it is not given), since it cannot carry another request.
 */
export function discardBody(raw: IncomingMessage, answered: Promise<unknown> = Promise.resolve()): Promise<boolean> {
  return new Promise((resolve) => {
    let discarded = 0;
    const settle = (ended: boolean): void => {
      clearTimeout(timer);
      raw.off('data', onData);
      raw.off('end', onEnd);
      raw.off('close', onClose);
      if (!ended && !raw.destroyed) void answered.finally(() => raw.socket.destroy());
      resolve(ended);
    };
    const onData = (chunk: Buffer): void => {
      discarded += chunk.length;
      if (discarded > UNREAD_BODY_LIMITS.bytes) settle(false);
    };
    const onEnd = (): void => settle(true);
    const onClose = (): void => settle(raw.complete);
    const timer = setTimeout(() => settle(false), UNREAD_BODY_LIMITS.ms);
    timer.unref();
    raw.on('data', onData);
    raw.once('end', onEnd);
    raw.once('close', onClose);
    raw.resume();
  });
}

/**
 * Closes a socket whose answer has been written: the write side ends after the answer (the client
 * reads it, then end of stream), and what the client still sends is read and dropped until it closes
 * its side or the limits run out.
 */
export function closeAfterAnswer(socket: Socket): void {
  let discarded = 0;
  const stop = (): void => {
    clearTimeout(timer);
    socket.destroy();
  };
  const timer = setTimeout(stop, UNREAD_BODY_LIMITS.ms);
  timer.unref();
  socket.on('data', (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > UNREAD_BODY_LIMITS.bytes) stop();
  });
  socket.once('end', stop);
  socket.once('close', () => clearTimeout(timer));
  socket.end();
  socket.resume();
}
