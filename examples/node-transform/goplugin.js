'use strict';

// The go-plugin side of a dsync plugin, in Node.js.
//
// dsync starts plugins with hashicorp/go-plugin. A plugin in any language
// takes part by doing what go-plugin's Go server does:
//
// 1. refuse to run unless the magic cookie DSYNC_PLUGIN is set;
// 2. serve gRPC on a unix socket, with the plugin's services, the standard
//    health service reporting SERVING for the service name "plugin", and
//    plugin.GRPCController/Shutdown for a clean stop;
// 3. mutual TLS ("AutoMTLS"): the host passes its certificate in
//    PLUGIN_CLIENT_CERT; the plugin makes a self-signed certificate of its
//    own, serves TLS with it and requires the host's certificate from
//    clients;
// 4. print one handshake line on stdout:
//    1|1|unix|/path/to/socket|grpc|<own certificate, base64 DER, no padding>
// 5. exit when the host goes away, even if it was killed.
//
// serve() does all of this; the caller only adds its services. Logs go to
// stderr as JSON lines ("@level", "@message"), which the host re-logs at
// their level under the plugin's name.

const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const forge = require('node-forge');

// The handshake constants of dsync's plugin protocol (internal/wire.Handshake).
const MAGIC_COOKIE_KEY = 'DSYNC_PLUGIN';
const MAGIC_COOKIE_VALUE = 'd5f1c0e7-8a1b-4c52-9e0f-3c7b2a6d9e41';
const CORE_PROTOCOL_VERSION = 1; // go-plugin's own protocol
const APP_PROTOCOL_VERSION = 1; // dsync plugin protocol v1

// dsync allows 64 MiB messages both ways: documents may be 16 MiB.
const MAX_MESSAGE_BYTES = 64 << 20;

const PROTO_DIR = path.join(__dirname, 'proto');
// keepCase: field names as in the .proto (data_type); enums as numbers;
// bytes as Buffers.
const LOADER_OPTIONS = { keepCase: true, longs: String, enums: Number, defaults: true, oneofs: true, includeDirs: [PROTO_DIR] };

function load(file) {
  return grpc.loadPackageDefinition(protoLoader.loadSync(file, LOADER_OPTIONS));
}

function log(level, message, fields) {
  const entry = Object.assign({ '@level': level, '@message': message, '@timestamp': new Date().toISOString().replace('Z', '000Z') }, fields);
  process.stderr.write(JSON.stringify(entry) + '\n');
}

// makeCertificate returns a fresh self-signed certificate for "localhost",
// valid for client and server authentication, as go-plugin makes them.
// node-forge builds the X.509 structure; Node's own crypto makes the key and
// the signature (much faster than forge's JavaScript RSA). forge encodes RSA
// public keys only, hence RSA rather than go-plugin's P-521: any key type
// works.
function makeCertificate() {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey);
  // A positive serial number: a leading byte below 0x80.
  cert.serialNumber = '01' + crypto.randomBytes(15).toString('hex');
  cert.validity.notBefore = new Date(Date.now() - 30 * 1000);
  cert.validity.notAfter = new Date(Date.now() + 365 * 24 * 3600 * 1000);
  const name = [
    { name: 'organizationName', value: 'dsync plugin' },
    { name: 'commonName', value: 'localhost' },
  ];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyCertSign: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }] },
  ]);
  cert.siginfo.algorithmOid = cert.signatureOid = forge.pki.oids.sha256WithRSAEncryption;
  cert.tbsCertificate = forge.pki.getTBSCertificate(cert);
  const tbs = Buffer.from(forge.asn1.toDer(cert.tbsCertificate).getBytes(), 'binary');
  cert.signature = crypto.sign('sha256', tbs, privateKey).toString('binary');
  const der = forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes();
  return {
    keyPem: privateKey,
    certPem: forge.pki.certificateToPem(cert),
    certField: Buffer.from(der, 'binary').toString('base64').replace(/=+$/, ''),
  };
}

// serve serves the plugin until the host stops it, then exits. register(server)
// adds the plugin's services to a grpc.Server.
function serve(register) {
  if (process.env[MAGIC_COOKIE_KEY] !== MAGIC_COOKIE_VALUE) {
    process.stderr.write(
      'This program is a dsync plugin. It is started by dsync, not by hand:\n' +
        'put it on PATH (or in --plugin-dir) and run dsync.\n',
    );
    process.exit(1);
  }
  const versions = (process.env.PLUGIN_PROTOCOL_VERSIONS || String(APP_PROTOCOL_VERSION)).split(',').map((v) => v.trim());
  if (!versions.includes(String(APP_PROTOCOL_VERSION))) {
    log('error', `the host does not offer plugin protocol version ${APP_PROTOCOL_VERSION} (it offers ${versions})`);
    process.exit(1);
  }

  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  });
  register(server);

  const health = load('health.proto').grpc.health.v1.Health;
  const SERVING = 1;
  server.addService(health.service, {
    Check(call, callback) {
      const service = call.request.service;
      if (service !== '' && service !== 'plugin') {
        callback({ code: grpc.status.NOT_FOUND, details: `unknown service ${JSON.stringify(service)}` });
        return;
      }
      callback(null, { status: SERVING });
    },
    Watch(call) {
      call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'Watch is not implemented' });
    },
  });

  const dir = fs.mkdtempSync(path.join(process.env.PLUGIN_UNIX_SOCKET_DIR || os.tmpdir(), 'plugin'));
  const sock = path.join(dir, 'grpc.sock');
  let stopping = false;
  const stop = (why) => {
    if (stopping) return;
    stopping = true;
    log('debug', `stopping: ${why}`);
    const done = () => {
      fs.rmSync(dir, { recursive: true, force: true });
      process.exit(0);
    };
    // Calls in flight get a moment to finish; the host's connection, which
    // it keeps open until the process exits, does not hold the exit up.
    setTimeout(() => {
      server.forceShutdown();
      done();
    }, 200).unref();
    server.tryShutdown(done);
  };

  const controller = load('grpc_controller.proto').plugin.GRPCController;
  server.addService(controller.service, {
    Shutdown(call, callback) {
      callback(null, {});
      setTimeout(() => stop('shutdown requested by the host'), 50);
    },
  });

  // The host drives the shutdown: a Ctrl-C meant for it must not stop the
  // plugin first. SIGTERM (also the parent-death signal dsync sets on
  // Linux) stops cleanly, and so does a new parent pid.
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => stop('SIGTERM'));
  const ppid = process.ppid;
  if (ppid > 1) {
    setInterval(() => {
      if (process.ppid !== ppid) {
        log('error', 'host process is gone; exiting');
        stop('host gone');
      }
    }, 500).unref();
  }

  let creds;
  let certField = '';
  const clientCert = process.env.PLUGIN_CLIENT_CERT || '';
  if (clientCert) {
    const c = makeCertificate();
    certField = c.certField;
    creds = grpc.ServerCredentials.createSsl(
      Buffer.from(clientCert),
      [{ private_key: Buffer.from(c.keyPem), cert_chain: Buffer.from(c.certPem) }],
      true,
    );
  } else {
    log('warn', 'PLUGIN_CLIENT_CERT is not set: serving without TLS (the host must allow it with --plugin-insecure)');
    creds = grpc.ServerCredentials.createInsecure();
  }
  server.bindAsync('unix:' + sock, creds, (err) => {
    if (err) {
      log('error', `cannot listen on ${sock}: ${err.message}`);
      process.exit(1);
    }
    process.stdout.write(`${CORE_PROTOCOL_VERSION}|${APP_PROTOCOL_VERSION}|unix|${sock}|grpc|${certField}\n`);
  });
}

module.exports = { serve, load, log };
