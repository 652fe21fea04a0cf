// Test helpers for nats-server processes of our own: the binary, a free loopback port, and
// whether something listens on a port. Shared by the single-server and cluster harnesses here and
// by the torture suite's server-crash harness.
import { execFileSync } from "node:child_process";
import { type AddressInfo, Socket, createServer } from "node:net";

/** Where the nats-server binary is (`NATS_SERVER_BIN`, else `nats-server` on PATH), or why it cannot be used. */
export function natsServerBinary(): { ok: true; path: string } | { ok: false; reason: string } {
  const path = process.env.NATS_SERVER_BIN ?? "nats-server";
  try {
    execFileSync(path, ["--version"], { stdio: "ignore", timeout: 5_000 });
    return { ok: true, path };
  } catch (error) {
    return {
      ok: false,
      reason: `no usable nats-server binary (${path}): ${(error as Error).message}`,
    };
  }
}

/** A loopback port nothing listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Whether a TCP connection to `127.0.0.1:port` succeeds within 500 ms. */
export async function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once("error", () => done(false));
    socket.connect(port, "127.0.0.1", () => done(true));
  });
}
