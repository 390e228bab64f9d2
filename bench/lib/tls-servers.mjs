/**
 * The TLS-terminating proxies STEVE is compared with: Caddy and nginx from Debian, each a child process
 * on a free 127.0.0.1 port with a config generated into a temporary directory, a self-signed P-256
 * certificate for 127.0.0.1 and localhost (openssl req), no access log, and bodies kept in memory.
 *
 * It must not: listen beyond loopback, use the packages' own configs, services, ports or state
 * directories (HOME and XDG_* point into the temporary directory for Caddy; nginx gets -p, -c and -e).
 */

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { join } from 'node:path';
import { freePort } from './processes.mjs';

const READY_TIMEOUT_MS = 15_000;

/** The first of `names` found on PATH or in /usr/sbin (nginx lives there), or null. */
export function findCommand(...names) {
  for (const name of names) {
    for (const dir of (process.env.PATH ?? '').split(':').concat('/usr/sbin', '/usr/local/sbin')) {
      if (dir !== '' && existsSync(join(dir, name))) return join(dir, name);
    }
  }
  return null;
}

/** A self-signed P-256 certificate for 127.0.0.1 and localhost, valid two days; returns the PEM paths. */
export function createCertificate(dir) {
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  return { certPath, keyPath, certPem: readFileSync(certPath, 'utf8') };
}

/**
 * Waits until a TLS handshake with the certificate as CA succeeds, and reports what was negotiated
 * (the same a load generator on Node gets): protocol, cipher, key exchange group.
 */
export async function waitForTls(port, certPem, server) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (server.child.exitCode !== null) throw new Error(`${server.name} exited with ${server.child.exitCode}: ${server.output()}`);
    try {
      return await new Promise((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port, ca: certPem, servername: 'localhost' }, () => {
          const key = socket.getEphemeralKeyInfo();
          resolve({ protocol: socket.getProtocol(), cipher: socket.getCipher().standardName, group: key.name ?? key.type });
          socket.end();
        });
        socket.once('error', reject);
      });
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${server.name} not ready after ${READY_TIMEOUT_MS} ms (${err.message}): ${server.output()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/**
 * Caddy in front of the app: one site on https://:PORT bound to 127.0.0.1, the certificate given, no
 * admin endpoint, no automatic HTTPS (no port 80, no ACME), HTTP/1.1 and HTTP/2 (no QUIC listener),
 * errors only in its log; keep-alive to the app shorter than the app's 60 s.
 *
 * Request bodies are buffered (`buffer_requests`): streamed, Caddy 2.6.2 (Go 1.19) dropped about one
 * 64 KiB request in 2,000 at one client ("reading from backend: use of closed network connection",
 * the client sees the connection close), apparently when the app answered as the last body bytes
 * arrived; it also opened a new connection to the app every few requests. Buffered: neither.
 */
export async function startCaddy({ group, dir, command, cert, appAddress }) {
  const port = await freePort();
  const home = join(dir, 'caddy-home');
  mkdirSync(home, { recursive: true });
  const caddyfile = join(dir, 'Caddyfile');
  writeFileSync(
    caddyfile,
    `{
\tadmin off
\tauto_https off
\tstorage file_system ${join(home, 'data')}
\tlog {
\t\toutput stderr
\t\tlevel ERROR
\t}
\tservers {
\t\tprotocols h1 h2
\t}
}

https://:${port} {
\tbind 127.0.0.1
\ttls ${cert.certPath} ${cert.keyPath}
\treverse_proxy ${appAddress} {
\t\tbuffer_requests
\t\ttransport http {
\t\t\tkeepalive 30s
\t\t}
\t}
}
`,
  );
  const env = { PATH: process.env.PATH, HOME: home, XDG_DATA_HOME: join(home, 'data'), XDG_CONFIG_HOME: join(home, 'config') };
  const server = { name: 'caddy', ...group.spawnServer(command, ['run', '--config', caddyfile, '--adapter', 'caddyfile'], { env, cwd: dir }) };
  const tls = await waitForTls(port, cert.certPem, server);
  return { ...server, port, tls, version: execFileSync(command, ['version'], { encoding: 'utf8' }).trim().split(' ')[0], bodies: 'request bodies buffered (buffer_requests), responses streamed' };
}

/**
 * nginx in front of the app: one process (`master_process off`), the prefix, pid file and temporary
 * directories in `dir`, no access log, keep-alive both ways; request bodies streamed, response bodies
 * buffered in memory only (16 x 16 KiB, never to a temporary file).
 */
export async function startNginx({ group, dir, command, cert, appAddress }) {
  const port = await freePort();
  const prefix = join(dir, 'nginx');
  for (const sub of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(prefix, sub), { recursive: true });
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(
    conf,
    `daemon off;
master_process off;
worker_processes 1;
pid ${join(prefix, 'nginx.pid')};
error_log stderr error;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${join(prefix, 'body')};
  proxy_temp_path ${join(prefix, 'proxy')};
  fastcgi_temp_path ${join(prefix, 'fastcgi')};
  uwsgi_temp_path ${join(prefix, 'uwsgi')};
  scgi_temp_path ${join(prefix, 'scgi')};
  upstream app {
    server ${appAddress};
    keepalive 128;
    keepalive_requests 1000000;
    keepalive_timeout 30s;
  }
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${cert.certPath};
    ssl_certificate_key ${cert.keyPath};
    ssl_protocols TLSv1.2 TLSv1.3;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_max_body_size 64m;
    client_body_buffer_size 128k;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_request_buffering off;
      proxy_buffer_size 16k;
      proxy_buffers 16 16k;
      proxy_max_temp_file_size 0;
    }
  }
}
`,
  );
  const server = { name: 'nginx', ...group.spawnServer(command, ['-p', prefix, '-c', conf, '-e', 'stderr'], { env: { PATH: process.env.PATH } }) };
  const tls = await waitForTls(port, cert.certPem, server);
  return { ...server, port, tls, version: nginxVersion(command), bodies: 'request bodies streamed, responses buffered in memory' };
}

/** `nginx -v` prints to stderr: "nginx version: nginx/1.22.1". */
function nginxVersion(command) {
  const { stdout, stderr } = spawnSync(command, ['-v'], { encoding: 'utf8' });
  return `${stderr}${stdout}`.trim().replace(/^nginx version: /, '');
}
