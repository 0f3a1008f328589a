// Runs the GraphQL over HTTP audits of graphql-http (its `serverAudits`, the reference
// implementation's conformance checks, MUST and SHOULD alike) against a running server:
//
//   node audit.mjs http://127.0.0.1:8080/graphql
//
// Prints one line per audit and exits 1 if any did not pass (a SHOULD that fails is a `warn`
// in graphql-http's terms; here it fails the run all the same), 2 on bad usage.
import { serverAudits } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs URL (the server\'s GraphQL endpoint)');
  process.exit(2);
}

const results = await Promise.all(serverAudits({ url }).map((audit) => audit.fn()));
let failures = 0;
for (const result of results) {
  if (result.status === 'ok') {
    console.log(`ok    ${result.id} ${result.name}`);
    continue;
  }
  failures += 1;
  let detail = '';
  try {
    const response = result.response;
    const body = await response.text();
    const headers = [...response.headers].map(([name, value]) => `${name}: ${value}`).join('; ');
    detail = `\n        HTTP ${response.status} [${headers}] ${body}`;
  } catch (error) {
    detail = `\n        (response not readable: ${error})`;
  }
  console.log(`${result.status.padEnd(5)} ${result.id} ${result.name}: ${result.reason}${detail}`);
}
console.log(`${results.length - failures} of ${results.length} audits ok`);
process.exit(failures === 0 ? 0 : 1);
