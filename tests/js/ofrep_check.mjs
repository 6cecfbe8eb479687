// Evaluates flags with OpenFeature's JavaScript OFREP providers (server and web) against a running eventtrack.
// Usage: node ofrep_check.mjs <base url> < {"context": {...}, "cases": [{"flag", "type", "default"}]}
// Prints {"server": [...], "web": [...]}: the evaluation details of every case, in order. The assertions are
// the caller's (tests/e2e/test_ofrep_providers.py).
import { text } from 'node:stream/consumers';

import { OFREPProvider } from '@openfeature/ofrep-provider';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';
import { OpenFeature as ServerOpenFeature } from '@openfeature/server-sdk';
import { OpenFeature as WebOpenFeature } from '@openfeature/web-sdk';

const GETTERS = { boolean: 'getBooleanDetails', string: 'getStringDetails', number: 'getNumberDetails', object: 'getObjectDetails' };

const baseUrl = process.argv[2];
const { context, cases } = JSON.parse(await text(process.stdin));
const details = (d) => ({
  value: d.value,
  variant: d.variant ?? null,
  reason: d.reason ?? null,
  errorCode: d.errorCode ?? null,
  errorMessage: d.errorMessage ?? null,
});

// The server provider asks for one flag per call.
await ServerOpenFeature.setProviderAndWait(new OFREPProvider({ baseUrl }));
const server = ServerOpenFeature.getClient();
const serverResults = [];
for (const c of cases) {
  serverResults.push(details(await server[GETTERS[c.type]](c.flag, c.default, context)));
}

// The web provider fetches every flag once (bulk) for the static context, then answers from memory.
// Headless in Node: no localStorage (cacheMode 'disabled'), no polling, no document to watch.
await WebOpenFeature.setContext(context);
await WebOpenFeature.setProviderAndWait(
  new OFREPWebProvider({ baseUrl, cacheMode: 'disabled', pollInterval: 0, changeDetection: 'none' }),
);
const web = WebOpenFeature.getClient();
const webResults = cases.map((c) => details(web[GETTERS[c.type]](c.flag, c.default)));

await ServerOpenFeature.close();
await WebOpenFeature.close();
process.stdout.write(JSON.stringify({ server: serverResults, web: webResults }));
