// Docs that compile: every runnable ```ts block of every package README, the root README and the
// guides is type-checked with the repository's strict settings (@switchyard/* resolved to the
// sources), as one program. An example can run and still not compile for a user (a class that
// needs its catalog, a misspelt option): that fails here.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import ts from "typescript";
import { afterAll, describe, expect, it } from "vitest";
import { codeBlocks } from "./readme-check.js";

const root = join(import.meta.dirname, "..");
const documents = [
  join(root, "README.md"),
  ...readdirSync(join(root, "packages"))
    .map((name) => join(root, "packages", name, "README.md"))
    .filter((file) => existsSync(file) && existsSync(join(dirname(file), "src"))),
  join(root, "docs", "own-catalog.md"),
].filter((file) => existsSync(file));

const scratch: string[] = [];
afterAll(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

/** Writes each runnable block where its imports resolve as for a user; returns file → origin. */
function writeExamples(): Map<string, { document: string; line: number }> {
  const files = new Map<string, { document: string; line: number }>();
  for (const document of documents) {
    // The root README and the guides belong to no package: they compile in event-schema (zod).
    const home = dirname(document);
    const dir =
      existsSync(join(home, "package.json")) && home !== root
        ? home
        : join(root, "packages", "event-schema");
    const out = join(dir, ".readme-types");
    mkdirSync(out, { recursive: true });
    if (!scratch.includes(out)) scratch.push(out);
    const stem = relative(root, document).replace(/[^\w]+/g, "_");
    codeBlocks(readFileSync(document, "utf8"))
      .filter((block) => block.runnable)
      .forEach((block, i) => {
        const file = join(out, `${stem}-${i + 1}.ts`);
        writeFileSync(file, block.code);
        files.set(file, { document: relative(root, document), line: block.line });
      });
  }
  return files;
}

describe("the documents' examples", { tags: ["slow"] }, () => {
  it("type-check with the repository's strict settings", () => {
    const files = writeExamples();
    expect(files.size).toBeGreaterThan(5);
    const config = ts.readConfigFile(join(root, "tsconfig.base.json"), (path) =>
      ts.sys.readFile(path),
    );
    const { options } = ts.parseJsonConfigFileContent(config.config, ts.sys, root);
    const program = ts.createProgram([...files.keys()], { ...options, noEmit: true });
    const problems = ts
      .getPreEmitDiagnostics(program)
      .filter((d) => d.file && files.has(d.file.fileName))
      .map((d) => {
        const origin = files.get(d.file!.fileName)!;
        const { line } = d.file!.getLineAndCharacterOfPosition(d.start ?? 0);
        return `${origin.document}:${origin.line + line}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`;
      });
    expect(problems).toEqual([]);
  });
});
