import type { Driver } from "@switchyard/transport";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDashboard } from "./index";
import { getJson, memory, seed } from "./test/fixture";

const TOKEN = "s3cret-token-for-tests";

let driver: Driver;
beforeAll(async () => {
  driver = await memory();
  await seed(driver);
});
afterAll(() => driver?.close());

const depth = async () => (await driver.inspector().deadLetterCounts()).depth;

describe("a window named after an Object.prototype property", () => {
  // `WINDOWS.constructor` exists on every object: it must not pass for a window.
  const names = ["constructor", "toString", "valueOf", "hasOwnProperty", "__proto__"];

  it("is refused with a 400 naming the parameter on every endpoint taking a window", async () => {
    const dash = createDashboard(driver);
    for (const endpoint of ["overview", "counts", "pipeline", "pipeline/keys"])
      for (const name of names) {
        const { status, body } = await getJson(dash, `/api/${endpoint}?window=${name}`);
        expect(status, `${endpoint}?window=${name}`).toBe(400);
        expect(body.error.code).toBe("INVALID_REQUEST");
        expect(body.error.message).toMatch(/^window must be one of 15m, 1h/);
      }
  });

  it("is refused on the pages too, with the message on the page", async () => {
    const dash = createDashboard(driver);
    for (const path of ["/?window=toString", "/pipeline?window=valueOf"]) {
      const response = await dash(new Request(`http://dash.test${path}`));
      expect(response.status, path).toBe(400);
      expect(await response.text()).toContain("window must be one of");
    }
  });
});

describe("a dead-letter action whose dryRun or again is not a boolean", () => {
  const act = (action: string, body: unknown) =>
    createDashboard(driver, { actions: { token: TOKEN } })(
      new Request(`http://dash.test/api/dead-letters/${action}`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-switchyard-token": TOKEN },
        body: JSON.stringify(body),
      }),
    );

  it("is refused with a 400 instead of acting for real", async () => {
    const before = await depth();
    expect(before).toBeGreaterThan(0);
    for (const dryRun of ["true", 1, "yes", null, {}]) {
      const response = await act("purge", { filter: { subscriber: "selfplay_watch" }, dryRun });
      const body = (await response.json()) as { error?: { code: string; message: string } };
      expect(response.status, JSON.stringify(dryRun)).toBe(400);
      expect(body.error?.message).toMatch(/^dryRun must be true or false/);
    }
    const again = await act("replay", { filter: { subscriber: "selfplay_watch" }, again: "no" });
    expect(again.status).toBe(400);
    expect(await depth()).toBe(before);
  });

  it("still counts with dryRun: true and leaves everything in place", async () => {
    const before = await depth();
    const response = await act("purge", {
      filter: { subscriber: "selfplay_watch" },
      dryRun: true,
    });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { dryRun: boolean }).dryRun).toBe(true);
    expect(await depth()).toBe(before);
  });
});

describe("a closed dashboard", () => {
  it("refuses a new live tail with a 503 instead of opening a stream an EventSource reopens", async () => {
    const dash = createDashboard(driver, { tailIntervalMs: 50 });
    await dash.close();
    const response = await dash(new Request("http://dash.test/api/events/stream"));
    expect(response.status).toBe(503);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("CLOSED");
    // The pages and the rest of the API still answer.
    expect((await getJson(dash, "/api/subscribers")).status).toBe(200);
  });
});

describe("an inspector that does not answer", () => {
  /** The driver's inspector, with `subscribers` stuck in a call that ignores its signal. */
  const stuck = () => {
    const inspector = driver.inspector();
    const seen: AbortSignal[] = [];
    const proxy = new Proxy(inspector, {
      get(target, key) {
        if (key === "subscribers")
          return (options?: { signal?: AbortSignal }) => {
            if (options?.signal) seen.push(options.signal);
            return new Promise<never>(() => {});
          };
        const value: unknown = Reflect.get(target, key);
        return typeof value === "function" ? (value as () => unknown).bind(target) : value;
      },
    });
    return { inspector: proxy, seen };
  };

  it("gets a 504 JSON error on the API after inspectorTimeoutMs, and its read is aborted", async () => {
    const { inspector, seen } = stuck();
    const dash = createDashboard(inspector, { inspectorTimeoutMs: 50 });
    const { status, body } = await getJson(dash, "/api/subscribers");
    expect(status).toBe(504);
    expect(body.error.code).toBe("INSPECTOR_TIMEOUT");
    expect(body.error.message).toContain("did not answer within 50 ms");
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((signal) => signal.aborted)).toBe(true);
  });

  it("gets a page that says so instead of a page that never loads", async () => {
    const dash = createDashboard(stuck().inspector, { inspectorTimeoutMs: 50 });
    for (const path of ["/subscribers", "/"]) {
      const response = await dash(new Request(`http://dash.test${path}`));
      expect(response.status, path).toBe(504);
      expect(response.headers.get("content-type")).toContain("text/html");
      expect(await response.text()).toContain("did not answer within 50 ms");
    }
  });

  it("leaves the other reads answering", async () => {
    const dash = createDashboard(stuck().inspector, { inspectorTimeoutMs: 50 });
    expect((await getJson(dash, "/api/events?limit=1")).status).toBe(200);
  });

  it("does not cut short a dead-letter action that outlasts it: the action ends with its outcome", async () => {
    // Every call of the driver's admin and inspector answers only after 150 ms.
    const slow = <T extends object>(target: T): T =>
      new Proxy(target, {
        get(t, key) {
          const value: unknown = Reflect.get(t, key);
          if (typeof value !== "function") return value;
          return async (...args: unknown[]) => {
            await new Promise((resolve) => setTimeout(resolve, 150));
            return (value as (...a: unknown[]) => unknown).apply(t, args);
          };
        },
      });
    const slowDriver = new Proxy(driver, {
      get(target, key) {
        if (key === "admin") return () => slow(target.admin());
        if (key === "inspector") return () => slow(target.inspector());
        const value: unknown = Reflect.get(target, key);
        return typeof value === "function" ? (value as () => unknown).bind(target) : value;
      },
    });
    const dash = createDashboard(slowDriver, {
      inspectorTimeoutMs: 50,
      actions: { token: TOKEN },
    });
    const response = await dash(
      new Request("http://dash.test/api/dead-letters/purge", {
        method: "POST",
        headers: { "content-type": "application/json", "x-switchyard-token": TOKEN },
        body: JSON.stringify({ filter: { subscriber: "selfplay_watch" }, dryRun: true }),
      }),
    );
    expect(response.status).toBe(200);
    expect(((await response.json()) as { dryRun: boolean }).dryRun).toBe(true);
  });

  it("is bounded only by a positive inspectorTimeoutMs", () => {
    for (const inspectorTimeoutMs of [0, -1, Number.NaN, Infinity])
      expect(() => createDashboard(driver, { inspectorTimeoutMs })).toThrow(/inspectorTimeoutMs/);
  });
});
