// A preload for `node --import` that records the URL of every module the process imports from
// ESM, one a line, in the file its own URL names (`module-recorder.js?log=<file>`): tests check
// which libraries a start loads. The hooks run on node's loader thread.
import { register } from 'node:module';

const log = new URL(import.meta.url).searchParams.get('log');
if (log === null) throw new Error('module-recorder needs ?log=<file> in its URL');
register('./module-recorder-hooks.js', import.meta.url, { data: { log } });
