// portkey-loopback.mjs - makes the Portkey gateway listen on 127.0.0.1 only.
// Portkey 1.15.2 (build/start-server.js) calls @hono/node-server's serve()
// with a port and no hostname, so Node binds every interface, and it has
// no flag or environment variable for the address. bench/run.py preloads
// this module (node --import) to give such listen(port) calls a host:
// $BENCH_LISTEN_HOST, else 127.0.0.1.
import net from 'node:net';

const host = process.env.BENCH_LISTEN_HOST || '127.0.0.1';
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' && (args[1] === undefined || typeof args[1] === 'function')) {
    args.splice(1, args[1] === undefined ? 1 : 0, host);
  }
  return listen.apply(this, args);
};
