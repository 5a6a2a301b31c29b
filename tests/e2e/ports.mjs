// Ports for the servers the end-to-end tests start, and listening that cannot hang.
//
// A port is handed out before its server binds it (keyway-proxy is told its address in its
// environment, and the provider's redirect URIs name it before it runs). Ports from the kernel's
// ephemeral range could be taken in between by any outgoing connection's local end (`connect`
// picks from that range), and Linux then refuses the bind with EADDRINUSE. So `freePort` hands out
// ports below that range, which only an explicit bind takes, never twice in one process.
import fs from 'node:fs';
import net from 'node:net';

/** The lowest port of the kernel's ephemeral range (Linux's default when it cannot be read). */
function ephemeralLow() {
  try {
    const [low] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    const n = Number(low);
    return Number.isInteger(n) && n > 2048 ? n : 32768;
  } catch {
    return 32768;
  }
}

const LOW = 10000;
const HIGH = Math.max(LOW + 1000, ephemeralLow());
const handedOut = new Set();

/**
 * Listens on `port` (0: any) and resolves with the bound port; rejects with the bind error
 * (EADDRINUSE and the like) instead of leaving the caller waiting for a callback that never comes.
 */
export function listen(server, port = 0, host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const failed = (err) => reject(new Error(`listen on ${host}:${port}: ${err.message}`, { cause: err }));
    server.once('error', failed);
    server.listen(port, host, () => {
      server.off('error', failed);
      resolve(server.address().port);
    });
  });
}

/** A port on 127.0.0.1 that nothing listens on, outside the ephemeral range, not handed out before. */
export async function freePort() {
  for (let tries = 0; tries < 200; tries += 1) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW));
    if (handedOut.has(port)) continue;
    const probe = net.createServer();
    const ok = await listen(probe, port).then(() => true, () => false);
    if (!ok) continue;
    await new Promise((resolve) => probe.close(resolve));
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free port in ${LOW}-${HIGH - 1} after 200 tries`);
}

export const PORT_RANGE = { low: LOW, high: HIGH };
