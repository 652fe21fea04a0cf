import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { DashboardOptionsError, serveDashboard } from "./index";
import { memory } from "./test/fixture";

/** A port no one listens on now. */
const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.once("error", reject);
  });

describe("serveDashboard", () => {
  it("listens on 127.0.0.1 by default, prints its URL with the base path, and closes idempotently", async () => {
    await using driver = await memory();
    const served = await serveDashboard({ driver, port: 0, basePath: "/ops/" });
    expect(served.url).toBe(`http://127.0.0.1:${served.port}/ops/`);
    const response = await fetch(`${served.url}api/overview`);
    expect(response.status).toBe(200);
    expect(((await response.json()) as { transport: string }).transport).toBe("memory");
    const first = served.close();
    expect(served.close()).toBe(first);
    await first;
    await expect(fetch(`${served.url}api/overview`)).rejects.toThrow();
  });

  it("ends live tails on close instead of waiting for them", async () => {
    await using driver = await memory();
    const served = await serveDashboard({ driver, port: 0 });
    const response = await fetch(`${served.url}api/events/stream`);
    const reader = response.body!.getReader();
    await reader.read(); // the `ready` event
    const started = Date.now();
    await served.close();
    expect(Date.now() - started).toBeLessThan(5000);
    await reader.cancel().catch(() => {});
  });

  it("rejects a bad port with a typed error and a port in use with the listen error", async () => {
    await using driver = await memory();
    await expect(serveDashboard({ driver, port: 70_000 })).rejects.toThrow(DashboardOptionsError);
    await using served = await serveDashboard({ driver, port: 0 });
    await expect(serveDashboard({ driver, port: served.port })).rejects.toThrow(/EADDRINUSE/);
  });

  it("rejects with the abort and leaves nothing listening when its signal aborts while it starts", async () => {
    await using driver = await memory();
    const controller = new AbortController();
    const port = await freePort();
    const serving = serveDashboard({ driver, port, signal: controller.signal });
    controller.abort(new Error("shutting down"));
    await expect(serving).rejects.toThrow("shutting down");
    // The port is free again: a dashboard listens on it.
    await using again = await serveDashboard({ driver, port });
    expect(again.port).toBe(port);
  });

  it("stops when its signal aborts", async () => {
    await using driver = await memory();
    const controller = new AbortController();
    const served = await serveDashboard({ driver, port: 0, signal: controller.signal });
    controller.abort();
    await served.close();
    await expect(fetch(`${served.url}api/overview`)).rejects.toThrow();
  });
});
