// Keeps, in a bundle's source map, only the mappings into the project's own sources: node keeps
// every map it loads (--enable-source-maps) for the life of the process, and the mappings into
// node_modules are most of it. A stack frame inside a package then names the bundle's line and
// column; a frame in the registry's code names its src/*.ts line as before.
import { readFileSync, writeFileSync } from 'node:fs';

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const DIGIT = new Map([...BASE64].map((char, value) => [char, value]));

function decodeSegment(text) {
  const values = [];
  let value = 0;
  let shift = 0;
  for (const char of text) {
    const digit = DIGIT.get(char);
    value += (digit & 31) << shift;
    if (digit & 32) {
      shift += 5;
    } else {
      values.push(value & 1 ? -(value >>> 1) : value >>> 1);
      value = 0;
      shift = 0;
    }
  }
  return values;
}

function encodeValue(value) {
  let rest = value < 0 ? (-value << 1) | 1 : value << 1;
  let text = '';
  do {
    let digit = rest & 31;
    rest >>>= 5;
    if (rest > 0) digit |= 32;
    text += BASE64[digit];
  } while (rest > 0);
  return text;
}

/** Rewrites the map file so that segments into sources `keep` rejects become unmapped. */
export function keepOwnMappings(mapFile, keep) {
  const map = JSON.parse(readFileSync(mapFile, 'utf8'));
  const kept = map.sources.map((source) => keep(source));
  // Absolute values of the fields that are relative to the previous segment across lines.
  const read = [0, 0, 0, 0];
  const written = [0, 0, 0, 0];
  const lines = map.mappings.split(';').map((line) => {
    let column = 0;
    let writtenColumn = 0;
    let lastUnmapped = false;
    const out = [];
    for (const segment of line === '' ? [] : line.split(',')) {
      const fields = decodeSegment(segment);
      column += fields[0];
      if (fields.length === 1) {
        out.push(encodeValue(column - writtenColumn));
        writtenColumn = column;
        lastUnmapped = true;
        continue;
      }
      for (let i = 1; i < fields.length; i++) read[i - 1] += fields[i];
      if (!kept[read[0]]) {
        // An unmapped segment at the start of the run, so the code is not taken for what precedes it.
        if (!lastUnmapped) out.push(encodeValue(column - writtenColumn));
        if (!lastUnmapped) writtenColumn = column;
        lastUnmapped = true;
        continue;
      }
      let text = encodeValue(column - writtenColumn);
      writtenColumn = column;
      const count = fields.length - 1;
      for (let i = 0; i < count; i++) {
        text += encodeValue(read[i] - written[i]);
        written[i] = read[i];
      }
      out.push(text);
      lastUnmapped = false;
    }
    return out.join(',');
  });
  map.mappings = lines.join(';');
  writeFileSync(mapFile, JSON.stringify(map));
}
