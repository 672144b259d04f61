// Read buffers that downloads share and give back: a blob GET reads into buffers of this pool and
// returns each one once the socket has taken its bytes, so a download allocates nothing per
// chunk. Fresh buffers per chunk are what cost a pull most: every MiB of them is external memory
// that V8 answers with a full garbage collection, and fresh pages the kernel has to fault in.

export class BufferPool {
  private readonly free: Buffer[] = [];

  constructor(
    /** The size of every buffer. */
    readonly bufferBytes: number,
    /** The most buffers kept for reuse; beyond it, a returned buffer is left to the garbage collector. */
    private readonly retained: number,
  ) {}

  /** A buffer of `bufferBytes`, reused when one is free. Its content is whatever it held last. */
  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.bufferBytes);
  }

  /** Gives a buffer back once nothing reads or writes it any more. */
  give(buffer: Buffer): void {
    if (this.free.length < this.retained && buffer.length === this.bufferBytes) this.free.push(buffer);
  }
}
