// Loopback ports for tests of what cannot be reached.
import net from 'node:net';

/** A loopback port nothing listens on: picked free by the kernel, then released. */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}
