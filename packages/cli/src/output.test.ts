import { stripVTControlCharacters } from "node:util";
import { describe, expect, it } from "vitest";
import { SwitchyardError } from "@switchyard/event-schema";
import { ExitCode, Output, describeError, formatTable, printable, terminalOf } from "./output";

const ESC = "\u001b[";

function capture(style?: ConstructorParameters<typeof Output>[3]) {
  let stdout = "";
  const out = new Output(
    false,
    (t) => void (stdout += t),
    () => {},
    style,
  );
  return { out, text: () => stdout };
}

describe("formatTable", () => {
  it("aligns columns under upper-case headers and right-aligns numbers", () => {
    expect(
      formatTable(
        ["name", "n"],
        [
          ["a", 1],
          ["long name", 100],
        ],
      ),
    ).toBe("NAME         N\na            1\nlong name  100\n");
  });

  it("prints missing cells as a dash and cuts long ones at 72, but in the last column", () => {
    const text = formatTable(
      ["a", "b"],
      [
        ["y".repeat(100), "x".repeat(100)],
        [undefined, "x"],
      ],
    );
    expect(text.split("\n")[1]).toBe(`${"y".repeat(71)}…  ${"x".repeat(100)}`);
    expect(text.split("\n")[2]).toMatch(/^- +x$/);
  });

  it("fits the width given: the last column wraps, the widest other columns are cut", () => {
    const detail = "the daemon has not sent a heartbeat for eleven minutes, limit five minutes";
    const text = formatTable(
      ["status", "check", "count", "detail"],
      [
        ["FAIL", "daemon:evaluator-with-a-long-name-indeed", 12345, detail],
        ["ok", "database", 1, "reachable"],
      ],
      { columns: 60 },
    );
    const lines = text.trimEnd().split("\n");
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(60);
    expect(lines[0]).toMatch(/^STATUS {2}CHECK +COUNT {2}DETAIL$/);
    // The check is cut with an ellipsis; the number is whole; the detail wraps onto more lines.
    expect(lines[1]).toMatch(/^FAIL {4}daemon:\S*… {2}12345 {2}the daemon/);
    expect(lines.length).toBeGreaterThan(3);
    const wrapped = lines
      .slice(1, -1)
      .map((line) => line.slice(lines[0]!.indexOf("DETAIL")).trim())
      .join(" ");
    expect(wrapped).toBe(detail);
  });

  it("never cuts nor wraps the columns named whole, and runs wider instead", () => {
    const id = "01a24e99-44d7-721a-8b3e-3f1c9e0b7d21";
    const rows = [[id, "TRAINING_COMPLETED", "trainer-with-a-long-source-name", id]];
    const headers = ["id", "type", "source", "event"];
    const cut = formatTable(headers, rows, { columns: 50 });
    expect(cut).not.toContain(`${id}  `); // without `whole`, the ids are cut or wrapped
    const text = formatTable(headers, rows, { columns: 50, whole: ["id", "event"] });
    const line = text.split("\n")[1]!;
    expect(line.startsWith(`${id}  `)).toBe(true);
    expect(line.endsWith(`  ${id}`)).toBe(true);
    expect(line).toMatch(/…/); // the other columns still give way
  });

  it("leaves a table that fits alone", () => {
    const rows = [["a", "b"]];
    expect(formatTable(["x", "y"], rows, { columns: 80 })).toBe(formatTable(["x", "y"], rows));
  });

  it("measures coloured cells by what shows, not their escape codes", () => {
    const { out, text } = capture({ color: true });
    out.table(
      ["status", "check"],
      [
        [out.colors.red("FAIL"), "a"],
        ["ok", "b"],
      ],
    );
    const plain = stripVTControlCharacters(text());
    expect(plain).toBe("STATUS  CHECK\nFAIL    a\nok      b\n");
    expect(text()).toContain(`${ESC}1mSTATUS`);
    expect(text()).toContain(`${ESC}31mFAIL`);
  });
});

describe("Output colour and width", () => {
  it("is plain and unfitted unless a style says otherwise", () => {
    const { out, text } = capture();
    out.table(["detail"], [["x".repeat(300)]]);
    out.line(out.colors.red("plain"));
    expect(text()).not.toContain(ESC);
    expect(text()).toContain("x".repeat(300));
  });

  it("fits tables to the style's columns", () => {
    const { out, text } = capture({ columns: 40 });
    out.table(["name", "detail"], [["n", "word ".repeat(30).trim()]]);
    for (const line of text().trimEnd().split("\n")) expect(line.length).toBeLessThanOrEqual(40);
  });
});

describe("terminalOf", () => {
  const tty = { isTTY: true, columns: 132 };
  const pipe = { isTTY: false };

  it("colours a terminal and fits its width; leaves a pipe plain and whole", () => {
    expect(terminalOf({ stream: tty, env: {}, argv: [] })).toEqual({ color: true, columns: 132 });
    expect(terminalOf({ stream: pipe, env: {}, argv: [] })).toEqual({ color: false });
  });

  it("respects NO_COLOR, FORCE_COLOR, TERM=dumb, --no-color and --color, in that order", () => {
    const of = (
      env: Record<string, string>,
      argv: string[] = [],
      stream: { isTTY: boolean; columns?: number } = tty,
    ) => terminalOf({ stream, env, argv }).color;
    expect(of({ NO_COLOR: "1" })).toBe(false);
    expect(of({ NO_COLOR: "" })).toBe(true);
    expect(of({ FORCE_COLOR: "1" }, [], pipe)).toBe(true);
    expect(of({ FORCE_COLOR: "0" })).toBe(false);
    expect(of({ FORCE_COLOR: "false" })).toBe(false);
    expect(of({ TERM: "dumb" })).toBe(false);
    expect(of({}, ["node", "switchyard", "health", "--no-color"])).toBe(false);
    expect(of({ FORCE_COLOR: "1" }, ["--no-color"], pipe)).toBe(false);
    expect(of({ NO_COLOR: "1" }, ["--color"])).toBe(true);
    expect(terminalOf({ stream: tty, env: {}, argv: [], color: false }).color).toBe(false);
  });

  it("takes COLUMNS over the terminal's width, and ignores nonsense", () => {
    expect(terminalOf({ stream: pipe, env: { COLUMNS: "90" }, argv: [] }).columns).toBe(90);
    expect(terminalOf({ stream: tty, env: { COLUMNS: "wide" }, argv: [] }).columns).toBe(132);
    expect(terminalOf({ stream: tty, env: { COLUMNS: "0" }, argv: [] }).columns).toBe(132);
  });
});

describe("describeError", () => {
  it("answers the transport contract's usage errors with exit code 2", async () => {
    const { UnknownTargetError, UnsupportedOperationError } = await import("@switchyard/transport");
    expect(describeError(new UnknownTargetError("ftp://x", ["sqlite", "nats"]))).toMatchObject({
      code: "UNKNOWN_TARGET",
      exitCode: ExitCode.usage,
    });
    expect(describeError(new UnsupportedOperationError("nats", "back up"))).toMatchObject({
      code: "UNSUPPORTED_OPERATION",
      exitCode: ExitCode.usage,
    });
    expect(describeError(new SwitchyardError("SOMETHING", "x")).exitCode).toBe(ExitCode.failed);
  });
});

describe("text from data on a terminal", () => {
  // What an event's subject, a handler's error message or a hand-written row may hold: clear the
  // screen, retitle the window (OSC … BEL), return to the line start, a one-byte C1 CSI, and a
  // right-to-left override that would show "evil.sh" as "hs.live".
  const hostile = "a\u001b[2Jb\u001b]0;owned\u0007c\rd\u009b31me\u202ef\u0008g\u007f";
  /** Raw characters a terminal would obey: any C0 but tab and newline, DEL, C1, bidi controls. */
  // eslint-disable-next-line no-control-regex -- the control characters are what is tested
  const obeyed = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

  it("writes every control character out instead of passing it to the terminal", () => {
    expect(printable(hostile)).toBe(
      "a\\x1b[2Jb\\x1b]0;owned\\x07c\\x0dd\\x9b31me\\u202ef\\x08g\\x7f",
    );
    expect(printable("tab\tand\nnewline stay")).toBe("tab\tand\nnewline stay");
  });

  it("keeps colour escapes only when colour is on, and escapes everything else even then", () => {
    const red = `${ESC}31mFAIL${ESC}39m`;
    expect(printable(`${red} \u001b[2J`, true)).toBe(`${red} \\x1b[2J`);
    expect(printable(red)).toBe("\\x1b[31mFAIL\\x1b[39m");
  });

  it("lines, tables, notes and errors show hostile text without obeying it", () => {
    let stdout = "";
    let stderr = "";
    const out = new Output(
      false,
      (t) => void (stdout += t),
      (t) => void (stderr += t),
      { color: true },
    );
    out.line(`subject ${hostile}`);
    out.table(["subject", "error"], [[hostile, `${out.colors.red("FAIL")} ${hostile}`]]);
    out.note(`note ${hostile}`);
    out.error(new SwitchyardError("BAD", `bad ${hostile}`));
    expect(stderr).not.toMatch(obeyed);
    expect(stdout).toContain("\\x1b]0;owned\\x07");
    expect(stdout).toContain(`${ESC}31mFAIL`);
    expect(stderr).toContain("note a\\x1b[2Jb");
    expect(stderr).toContain("error: bad a\\x1b[2Jb");
    // No escape but our own colours: strip those, and nothing a terminal obeys is left.
    const ownColours = new RegExp(`${ESC.replace("[", "\\[")}[0-9;]*m`, "g");
    expect(stdout.replace(ownColours, "")).not.toMatch(obeyed);
  });

  it("JSON output escapes what JSON.stringify leaves raw, and still parses to the same value", () => {
    let stdout = "";
    const json = new Output(
      true,
      (t) => void (stdout += t),
      () => {},
    );
    json.data({ subject: hostile });
    json.jsonLine({ subject: hostile });
    json.error(new SwitchyardError("BAD", hostile));
    expect(stdout).not.toMatch(obeyed);
    const [data, line] = stdout.split('\n{"subject');
    expect(JSON.parse(data!).subject).toBe(hostile);
    expect(JSON.parse(`{"subject${line!.split("\n")[0]}`).subject).toBe(hostile);
    expect(stdout).toContain("\\u009b31m");
    expect(stdout).toContain("\\u202e");
  });
});
