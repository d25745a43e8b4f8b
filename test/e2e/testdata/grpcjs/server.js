// A @grpc/grpc-js-xds server for test/e2e/grpcjs_test.go. It reads its xDS
// bootstrap from GRPC_XDS_BOOTSTRAP, binds argv[3] ("0.0.0.0:P") with
// XdsServerCredentials (its security comes from the control plane), prints
// "serving" once the control plane's server listener puts it in serving
// mode, and answers UnaryCall with hostname "grpc-js" and the caller's
// SPIFFE ID (the URI SAN of its certificate; "" for plaintext) as username.
'use strict';

const grpc = require('@grpc/grpc-js');
const xds = require('@grpc/grpc-js-xds');
const protoLoader = require('@grpc/proto-loader');

xds.register(); // registers the HTTP filters (router, RBAC, fault) servers need too
const def = protoLoader.loadSync(process.argv[2], { keepCase: true });
const TestService = grpc.loadPackageDefinition(def).grpc.testing.TestService;

function peerID(call) {
  const cert = call.getAuthContext()?.sslPeerCertificate;
  const san = cert?.subjectaltname ?? '';
  const uri = san.split(', ').find((s) => s.startsWith('URI:'));
  return uri ? uri.slice(4) : '';
}

const server = new xds.XdsServer();
server.addService(TestService.service, {
  UnaryCall: (call, callback) => callback(null, { hostname: 'grpc-js', username: peerID(call) }),
});
server.bindAsync(process.argv[3], new xds.XdsServerCredentials(grpc.ServerCredentials.createInsecure()), (err) => {
  if (err) {
    console.error(err);
    process.exit(1);
  }
  console.log('serving');
});
process.on('SIGTERM', () => server.forceShutdown());
