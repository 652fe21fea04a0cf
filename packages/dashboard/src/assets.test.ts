import { describe, expect, it } from "vitest";
import { createDashboard } from "./index";
import { memory } from "./test/fixture";

const BUDGET = 200 * 1024;

describe("the client assets", () => {
  it("are served from the package, compressed, within the 200 kB gzip budget", async () => {
    await using driver = await memory();
    const dash = createDashboard(driver, { basePath: "/ops" });
    let total = 0;
    for (const name of ["dashboard.js", "dashboard.css", "uplot.js", "uplot.css", "favicon.svg"]) {
      const response = await dash(
        new Request(`http://dash.test/ops/assets/${name}`, {
          headers: { "accept-encoding": "gzip" },
        }),
      );
      expect(response.status, name).toBe(200);
      const size = (await response.arrayBuffer()).byteLength;
      if (name !== "favicon.svg")
        expect(response.headers.get("content-encoding"), name).toBe("gzip");
      total += size;
    }
    console.log(`client bundle: ${(total / 1024).toFixed(1)} kB gzip`);
    expect(total).toBeGreaterThan(30 * 1024); // uPlot is in it
    expect(total).toBeLessThan(BUDGET);
    expect((await dash(new Request("http://dash.test/ops/assets/../package.json"))).status).toBe(
      404,
    );
    expect((await dash(new Request("http://dash.test/ops/assets/nope.js"))).status).toBe(404);
  });
});
