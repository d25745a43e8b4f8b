// A @grpc/grpc-js-xds client for test/e2e/grpcjs_test.go. It reads its xDS
// bootstrap from GRPC_XDS_BOOTSTRAP, makes the calls given as JSON in
// argv[3] ([{"target": "echo:7070", "header": "v2"}, ...]) through
// xds:/// with XdsChannelCredentials (mTLS as the control plane says),
// and prints one JSON array of results: {target, header, hostname,
// username} or {target, header, error}.
'use strict';

const grpc = require('@grpc/grpc-js');
const xds = require('@grpc/grpc-js-xds');
const protoLoader = require('@grpc/proto-loader');

xds.register();
const def = protoLoader.loadSync(process.argv[2], { keepCase: true });
const TestService = grpc.loadPackageDefinition(def).grpc.testing.TestService;
const calls = JSON.parse(process.argv[3]);
const creds = new xds.XdsChannelCredentials(grpc.credentials.createInsecure());
const clients = new Map();

function ready(client, deadline) {
  return new Promise((resolve) => client.waitForReady(deadline, (err) => resolve(err)));
}

async function call(c) {
  const deadline = new Date(Date.now() + 20000);
  let client = clients.get(c.target);
  if (!client) {
    client = new TestService('xds:///' + c.target, creds);
    clients.set(c.target, client);
    const err = await ready(client, deadline);
    if (err) {
      return { target: c.target, header: c.header, error: 'not ready: ' + err.message };
    }
  }
  const md = new grpc.Metadata();
  if (c.header) {
    md.set('x-version', c.header);
  }
  return new Promise((resolve) => {
    client.UnaryCall({}, md, { deadline }, (err, resp) => {
      if (err) {
        resolve({ target: c.target, header: c.header, error: err.message });
      } else {
        resolve({ target: c.target, header: c.header, hostname: resp.hostname, username: resp.username });
      }
    });
  });
}

(async () => {
  const out = [];
  for (const c of calls) {
    out.push(await call(c));
  }
  console.log(JSON.stringify(out));
  process.exit(0);
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
