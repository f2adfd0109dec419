// freePort: the port a test or benchmark gives the next server it starts. Picked below the kernel's ephemeral range,
// where no outgoing connection and no other process's bind to port 0 takes it before that server binds it (with test
// files running side by side, a port from port 0 was taken in between: the Web UI test's dev server failed to start).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { freePort } from '../../cli/dev-server';

describe('freePort', () => {
  it('gives ports below the ephemeral range that can be bound, and not the same one each time', async () => {
    const low = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    const ports: number[] = [];
    for (let i = 0; i < 20; i++) ports.push(await freePort());
    for (const port of ports) assert.ok(port >= 10_000 && port < low, `port ${port} below ${low}`);
    assert.ok(new Set(ports).size > 1, `20 picks, one port: ${ports[0]}`);
    const srv = net.createServer();
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(ports[0], '127.0.0.1', () => resolve());
    });
    await new Promise((r) => srv.close(r));
  });

  it('never gives a port that is held', async () => {
    const held: net.Server[] = [];
    try {
      // Hold 200 ports of the range; none of them may come back.
      const taken = new Set<number>();
      for (let i = 0; i < 200; i++) {
        const p = await freePort();
        const s = net.createServer();
        await new Promise<void>((resolve, reject) => {
          s.once('error', reject);
          s.listen(p, '127.0.0.1', () => resolve());
        });
        held.push(s);
        taken.add(p);
      }
      assert.equal(taken.size, 200);
    } finally {
      await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
    }
  });
});
