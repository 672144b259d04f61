// What fastify's plugin-utils.js gets for require('semver') in the bundle (build/bundle.mjs).
// It loads all of semver at start, to check the fastify version that a plugin asks for, and the
// registry registers no such plugin; loading semver's index runs ranges/subset.js, whose first
// Comparator compiles semver's largest regular expression: about a fifth of the start-up CPU.
// Here the three functions plugin-utils calls load on their first call.
'use strict';
module.exports = {
  gt: (...args) => require('semver/functions/gt')(...args),
  coerce: (...args) => require('semver/functions/coerce')(...args),
  satisfies: (...args) => require('semver/functions/satisfies')(...args),
};
