import type { Driver } from "@switchyard/transport";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONTENT_SECURITY_POLICY, DashboardOptionsError, createDashboard } from "./index";
import { type Seeded, memory, seed } from "./test/fixture";

const TOKEN = "s3cret-token-for-tests";

let driver: Driver;
let seeded: Seeded;
beforeAll(async () => {
  driver = await memory();
  seeded = await seed(driver);
});
afterAll(() => driver?.close());

const write = (
  handler: (r: Request) => Promise<Response>,
  path: string,
  headers: Record<string, string>,
  body: unknown = { filter: { subscriber: "selfplay_watch" } },
  method = "POST",
) =>
  handler(
    new Request(`http://dash.test${path}`, {
      method,
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    }),
  );

const depth = async () => (await driver.inspector().deadLetterCounts()).depth;

describe("writes", () => {
  it("are refused with 403 when actions are not enabled, even with a token", async () => {
    const dash = createDashboard(driver);
    for (const action of ["replay", "purge"]) {
      const response = await write(dash, `/api/dead-letters/${action}`, {
        "x-switchyard-token": TOKEN,
      });
      expect(response.status).toBe(403);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe("READ_ONLY");
    }
    expect(await depth()).toBe(4);
  });

  it("are refused with 403 without the token, with a wrong one, and from another origin", async () => {
    const dash = createDashboard(driver, { actions: { token: TOKEN } });
    const cases: Record<string, string>[] = [
      {},
      { "x-switchyard-token": "wrong-token-value" },
      { "x-switchyard-token": `${TOKEN}x` },
      { "x-switchyard-token": TOKEN, origin: "http://evil.test" },
    ];
    for (const headers of cases) {
      const response = await write(dash, "/api/dead-letters/purge", headers);
      expect(response.status, JSON.stringify(headers)).toBe(403);
    }
    // The token in a query string or a form field is not the header: refused.
    const form = await dash(
      new Request(`http://dash.test/api/dead-letters/purge?token=${TOKEN}`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: `token=${TOKEN}&subscriber=selfplay_watch`,
      }),
    );
    expect(form.status).toBe(403);
    expect(await depth()).toBe(4);
  });

  it("are refused for every method but POST on any path without the token (no write by GET)", async () => {
    const dash = createDashboard(driver, { actions: { token: TOKEN } });
    for (const method of ["PUT", "DELETE", "PATCH", "OPTIONS"])
      expect((await write(dash, "/api/dead-letters/purge", {}, {}, method)).status).toBe(403);
    const get = await dash(new Request("http://dash.test/api/dead-letters/purge"));
    expect(get.status).toBe(404);
    expect(await depth()).toBe(4);
  });

  it("need a JSON body", async () => {
    const dash = createDashboard(driver, { actions: { token: TOKEN } });
    const response = await dash(
      new Request("http://dash.test/api/dead-letters/replay", {
        method: "POST",
        headers: { "x-switchyard-token": TOKEN, "content-type": "text/plain" },
        body: "{}",
      }),
    );
    expect(response.status).toBe(415);
  });

  it("are refused when the dashboard reads an inspector only", async () => {
    const dash = createDashboard(driver.inspector(), { actions: { token: TOKEN } });
    const response = await write(dash, "/api/dead-letters/replay", { "x-switchyard-token": TOKEN });
    expect(response.status).toBe(403);
  });
});

describe("options", () => {
  it("reject a short token, a relative base path and a source that is not a driver", () => {
    expect(() => createDashboard(driver, { actions: { token: "short" } })).toThrow(
      DashboardOptionsError,
    );
    expect(() => createDashboard(driver, { basePath: "ops" })).toThrow(/basePath/);
    expect(() => createDashboard({} as Driver)).toThrow(/expected a driver/);
  });
});

describe("every response", () => {
  it("carries the Content-Security-Policy and the other security headers", async () => {
    const dash = createDashboard(driver);
    for (const path of ["/", "/events", "/api/overview", "/assets/dashboard.js", "/no-such-page"]) {
      const response = await dash(new Request(`http://dash.test${path}`));
      const csp = response.headers.get("content-security-policy") ?? "";
      expect(csp, path).toContain("default-src 'self'");
      expect(csp, path).toContain("script-src 'self'");
      expect(csp, path).not.toContain("unsafe-inline");
      expect(csp, path).toContain("frame-ancestors 'none'");
      expect(response.headers.get("x-content-type-options"), path).toBe("nosniff");
      expect(response.headers.get("x-frame-options"), path).toBe("DENY");
      expect(response.headers.get("strict-transport-security"), path).toBeNull();
    }
    expect(CONTENT_SECURITY_POLICY).toContain("default-src 'self'");
  });

  it("loads nothing from another origin and runs no inline script", async () => {
    const dash = createDashboard(driver);
    for (const path of ["/", "/pipeline", "/subscribers", "/events", "/dead-letters", "/daemons"]) {
      const text = await (await dash(new Request(`http://dash.test${path}`))).text();
      expect(text, path).not.toMatch(/(src|href)="(https?:)?\/\//);
      const scripts = [...text.matchAll(/<script\b[^>]*>/g)].map((m) => m[0]);
      expect(scripts, path).toEqual(['<script type="module" src="/assets/dashboard.js">']);
      expect(text, path).not.toMatch(/\son[a-z]+=/i);
      expect(text, path).not.toMatch(/\sstyle=/i);
    }
  });
});

describe("hostile input", () => {
  it("renders a payload with <script>, very long strings and deep nesting inert", async () => {
    const dash = createDashboard(driver, { actions: { token: TOKEN } });
    const response = await dash(new Request(`http://dash.test/events/${seeded.hostileId}`));
    expect(response.status).toBe(200);
    const text = await response.text();
    const body = text.slice(text.indexOf("<main"));
    expect(body).not.toContain("<script>window.__pwned");
    expect(body).not.toContain("<img src=x");
    expect(body).not.toContain("</pre><script>");
    expect(body).toContain("&lt;script&gt;window.__pwned=1&lt;/script&gt;");
    expect(body).toContain("&lt;b&gt;bold&lt;/b&gt;");
    // The 300,000-character string is cut for the page (the JSON API has it whole).
    expect(text.length).toBeLessThan(260_000);
    expect(body).toContain("more characters: see the JSON API");
  });

  it("escapes hostile error messages and subjects on every page that shows them", async () => {
    const dash = createDashboard(driver, { actions: { token: TOKEN } });
    for (const path of ["/events", "/dead-letters", "/daemons", "/", "/pipeline"]) {
      const text = await (await dash(new Request(`http://dash.test${path}`))).text();
      expect(text, path).not.toMatch(/<script>(?!<\/script>)|<b>|<img/);
    }
    const record = (await driver.inspector().deadLetters({ subscriber: "pill_eater" }))
      .deadLetters[0]!;
    const text = await (
      await dash(new Request(`http://dash.test/dead-letters/${record.id}`))
    ).text();
    expect(text).toContain("&lt;script&gt;alert(&#39;dead&#39;)&lt;/script&gt;");
    expect(text).not.toContain("<script>alert");
  });

  it("escapes what the URL carries: ids, filters and paths", async () => {
    const dash = createDashboard(driver);
    const evil = encodeURIComponent('"><script>alert(1)</script>');
    for (const path of [
      `/events/${evil}`,
      `/events?type=${evil}`,
      `/dead-letters?type=${evil}`,
      `/${evil}`,
    ]) {
      const text = await (await dash(new Request(`http://dash.test${path}`))).text();
      expect(text, path).not.toContain("<script>alert(1)");
    }
  });
});
