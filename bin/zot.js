#!/usr/bin/env node
// Shim over the compiled CLI; `npm ci` builds dist/ through the prepare script.
import '../dist/src/cli/main.js';
