// Ajv 2020 in strict mode over the corpus, as an editor sees it.
//
// Usage: node ajv_corpus.js MODULES SCHEMA FILE...
//
// MODULES is a node_modules directory holding ajv (8) and yaml (2), the
// YAML reader yaml-language-server uses. The schema is compiled with
// strict: true (a schema Ajv's strict mode refuses fails here); each
// FILE is read as YAML 1.2 (core schema, merge keys applied; a key given
// twice keeps the last value, as a JSON reader would) and validated.
// Prints one JSON object per file: {"file", "verdict": "accept" or
// "reject" or "yaml-error", "why"}. Exits 2 if the schema does not
// compile, 0 otherwise.
'use strict';

const fs = require('fs');
const path = require('path');

const [modules, schemaPath, ...files] = process.argv.slice(2);
const Ajv2020 = require(path.resolve(modules, 'ajv/dist/2020')).default;
const YAML = require(path.resolve(modules, 'yaml'));

let validate;
try {
  const ajv = new Ajv2020({ strict: true, allErrors: false });
  validate = ajv.compile(JSON.parse(fs.readFileSync(schemaPath, 'utf8')));
} catch (e) {
  console.log(JSON.stringify({ schema: schemaPath, error: e.message }));
  process.exit(2);
}

for (const file of files) {
  const out = { file };
  try {
    const doc = YAML.parseDocument(fs.readFileSync(file, 'utf8'), {
      version: '1.2', schema: 'core', merge: true, uniqueKeys: false,
    });
    if (doc.errors.length) {
      out.verdict = 'yaml-error';
      out.why = doc.errors[0].message.split('\n')[0];
    } else if (validate(doc.toJS({ maxAliasCount: 1000 }))) {
      out.verdict = 'accept';
    } else {
      const e = validate.errors[0];
      out.verdict = 'reject';
      out.why = `${e.instancePath || '(top)'}: ${e.message}`;
    }
  } catch (e) {
    out.verdict = 'yaml-error';
    out.why = String(e.message).split('\n')[0];
  }
  console.log(JSON.stringify(out));
}
