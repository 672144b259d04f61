// What the compiled configuration schema (validate-schema.generated.ts) calls at run time: the
// two formats the schema declares, and ajv's string length helper (minLength counts characters,
// not UTF-16 code units). compile-schema.ts compiles against these same functions.
import { createRequire } from 'node:module';
import ucs2lengthModule from 'ajv/dist/runtime/ucs2length.js';

import { isDuration } from './duration.js';

export const ucs2length = ucs2lengthModule.default;

const require = createRequire(import.meta.url);

/**
 * A plain MAJOR.MINOR.PATCH, as nearly every configuration's distSpecVersion is: semver takes it
 * as valid whenever its numbers are safe integers.
 */
const PLAIN_VERSION = /^(0|[1-9]\d{0,15})\.(0|[1-9]\d{0,15})\.(0|[1-9]\d{0,15})$/;

let validSemver: ((text: string) => string | null) | undefined;

/**
 * Whether `text` is a version semver takes as valid. A plain version is answered here; anything
 * else by semver's `valid`, loaded on its first use: loading it builds semver's 40 regular
 * expressions, some 170 KiB of what a start allocates before its first answer.
 */
export function isSemver(text: string): boolean {
  const plain = PLAIN_VERSION.exec(text);
  if (plain !== null && plain.slice(1).every((number) => Number.isSafeInteger(Number(number)))) return true;
  validSemver ??= require('semver/functions/valid.js') as (text: string) => string | null;
  return validSemver(text) !== null;
}

export const formats = {
  duration: isDuration,
  semver: isSemver,
};
