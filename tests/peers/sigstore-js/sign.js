'use strict';
// Keyless-signs an in-toto statement about an image digest with sigstore-js, the way GitHub's
// actions/attest does, and attaches the bundle to the image with @sigstore/oci. Signet's tests
// (tests/e2e/sigstore_js.rs) then verify what an independent signer made.
//
// There is no network to a real Fulcio, Rekor or TSA, so the sigstore-js project's own mock
// services (@sigstore/mock) stand in: their handlers are served on 127.0.0.1 for this run only,
// with fresh keys, and their keys and certificates are written out as the trusted_root.json
// that verifies what they issued. The OIDC token is unsigned: the mock Fulcio only reads its
// claims (its design), so `iss` and `sub` become the certificate's issuer and URI SAN.
//
// Usage: node sign.js --out DIR --subject-digest sha256:HEX --subject-name NAME
//          --predicate-type URI [--predicate FILE] --identity URI --issuer URL
//          [--image HOST/REPO --image-digest sha256:HEX]
// Writes DIR/bundle.json and DIR/trusted_root.json; with --image, prints the referrer
// manifest's descriptor (JSON) on stdout.
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const mock = require('@sigstore/mock');
const sign = require('@sigstore/sign');
const oci = require('@sigstore/oci');
const { bundleToJSON } = require('@sigstore/bundle');
const { TrustedRoot, HashAlgorithm, PublicKeyDetails } = require('@sigstore/protobuf-specs');

const BUNDLE_V03 = 'application/vnd.dev.sigstore.bundle.v0.3+json';

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || argv[i + 1] === undefined) {
      throw new Error(`bad argument ${argv[i]}`);
    }
    args[argv[i].slice(2)] = argv[i + 1];
  }
  for (const required of ['out', 'subject-digest', 'subject-name', 'predicate-type', 'identity', 'issuer']) {
    if (!args[required]) throw new Error(`--${required} is required`);
  }
  return args;
}

const newKeyPair = () => crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });

// The mock services on one loopback port, each handler at its real API path.
async function startServices() {
  const server = http.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  const ctlog = await mock.initializeCTLog(newKeyPair());
  const ca = await mock.initializeCA(newKeyPair(), ctlog);
  const tlog = await mock.initializeTLog(base, newKeyPair());
  const services = { base, ctlog, ca, tlog, tsa: undefined };
  // The TSA is made at request time with a whole-second clock: the mock stamps its clock's
  // milliseconds into genTime as a fraction, which sigstore-rust's RFC 3161 parser (the der
  // crate's GeneralizedTime) refuses; rounding up keeps the time at or after the certificate's
  // notBefore (whole seconds, issued earlier in this run).
  const tsaHandler = async (body) => {
    services.tsa = await mock.initializeTSA(newKeyPair(), new Date(Math.ceil(Date.now() / 1000) * 1000));
    return mock.tsaHandler(services.tsa).fn(body);
  };
  const handlers = {
    '/api/v2/signingCert': mock.fulcioHandler(ca).fn,
    '/api/v1/log/entries': mock.rekorHandler(tlog).fn,
    '/api/v1/timestamp': tsaHandler,
  };
  server.on('request', (req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', async () => {
      const handler = req.method === 'POST' && handlers[req.url];
      if (!handler) {
        res.writeHead(404).end();
        return;
      }
      const { statusCode, response, contentType } = await handler(Buffer.concat(chunks).toString());
      res.writeHead(statusCode, { 'Content-Type': contentType || 'text/plain' }).end(response);
    });
  });
  services.close = () => server.close();
  return services;
}

// The protobuf-specs TrustedRoot naming exactly the mock's CA, CT log, Rekor key and TSA chain,
// valid from a minute before this run.
function trustedRoot({ base, ctlog, ca, tlog, tsa }) {
  const validFor = { start: new Date(Date.now() - 60_000) };
  const log = (publicKey, keyId) => ({
    baseUrl: base,
    hashAlgorithm: HashAlgorithm.SHA2_256,
    publicKey: { rawBytes: publicKey, keyDetails: PublicKeyDetails.PKIX_ECDSA_P256_SHA_256, validFor },
    logId: { keyId },
  });
  return TrustedRoot.toJSON({
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [log(tlog.publicKey, crypto.createHash('sha256').update(tlog.publicKey).digest())],
    certificateAuthorities: [{
      subject: { organization: 'sigstore.mock', commonName: 'sigstore' },
      uri: base,
      certChain: { certificates: [{ rawBytes: ca.rootCertificate }] },
      validFor,
    }],
    ctlogs: [log(ctlog.publicKey, ctlog.logID)],
    timestampAuthorities: [{
      subject: { organization: 'sigstore.mock', commonName: 'tsa' },
      uri: base,
      certChain: { certificates: [{ rawBytes: tsa.intCertificate }, { rawBytes: tsa.rootCertificate }] },
      validFor,
    }],
  });
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const services = await startServices();
  const b64url = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const token = `${b64url({ alg: 'none' })}.${b64url({ iss: args.issuer, sub: args.identity, aud: 'sigstore' })}.`;
  const statement = {
    _type: 'https://in-toto.io/Statement/v1',
    subject: [{ name: args['subject-name'], digest: { sha256: args['subject-digest'].replace(/^sha256:/, '') } }],
    predicateType: args['predicate-type'],
    predicate: args.predicate ? JSON.parse(fs.readFileSync(args.predicate, 'utf8')) : {},
  };
  const builder = new sign.DSSEBundleBuilder({
    signer: new sign.FulcioSigner({
      fulcioBaseURL: services.base,
      identityProvider: { getToken: async () => token },
    }),
    witnesses: [
      // `intoto` entries: the mock Rekor logs the proposed entry as the entry body, and only an
      // intoto proposal carries the fields of a logged entry (a `dsse` proposal does not).
      new sign.RekorWitness({ rekorBaseURL: services.base, entryType: 'intoto' }),
      new sign.TSAWitness({ tsaBaseURL: services.base }),
    ],
  });
  const bundle = await builder.create({
    data: Buffer.from(JSON.stringify(statement)),
    type: 'application/vnd.in-toto+json',
  });
  services.close();
  const bundleJSON = JSON.stringify(bundleToJSON(bundle));
  fs.writeFileSync(path.join(args.out, 'bundle.json'), bundleJSON);
  fs.writeFileSync(path.join(args.out, 'trusted_root.json'), JSON.stringify(trustedRoot(services)));

  if (args.image) {
    // What actions/attest does: the bundle as an OCI 1.1 referrer of the image, with these
    // annotations; on a registry without the referrers API, @sigstore/oci updates the
    // `sha256-<hex>` tag index itself.
    const descriptor = await oci.attachArtifactToImage({
      imageName: args.image,
      imageDigest: args['image-digest'],
      artifact: Buffer.from(bundleJSON),
      mediaType: BUNDLE_V03,
      annotations: {
        'dev.sigstore.bundle.content': 'dsse-envelope',
        'dev.sigstore.bundle.predicateType': args['predicate-type'],
      },
    });
    process.stdout.write(`${JSON.stringify(descriptor)}\n`);
  }
}

main().catch((err) => {
  process.stderr.write(`sign.js: ${err.stack || err}\n${err.cause ? `cause: ${err.cause.stack || err.cause}\n` : ''}`);
  process.exit(1);
});
