// Verifies webhook requests the way a receiver using the Standard Webhooks spec's own library
// would (https://www.standardwebhooks.com, npm `standardwebhooks`), independently of our Rust
// code. Reads {secret, requests: [{headers, body}]} as JSON on stdin; prints one RESULT line:
// for each request, whether it verified, and whether a copy with one byte of the body changed
// was refused.
import { Webhook } from "standardwebhooks";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const { secret, requests } = JSON.parse(input);
const hook = new Webhook(secret);
const results = requests.map(({ headers, body }) => {
  let verified = false;
  let error = null;
  try {
    hook.verify(body, headers);
    verified = true;
  } catch (e) {
    error = String(e && e.message);
  }
  let tamperedRefused = false;
  try {
    hook.verify(body.replace(/.$/, body.endsWith("}") ? " " : "}"), headers);
  } catch {
    tamperedRefused = true;
  }
  return { verified, error, tamperedRefused };
});
console.log("RESULT " + JSON.stringify(results));
