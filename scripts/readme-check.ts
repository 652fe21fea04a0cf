// What the docs test checks in a Markdown document, apart from "it runs": that the install line
// names what the examples import, and that a `console.log(…); // <output>` comment is the output.
import { builtinModules } from "node:module";
import { formatWithOptions } from "node:util";
import ts from "typescript";

/** A ```ts block: its code and the Markdown line its first code line is on (1-based). */
export interface CodeBlock {
  code: string;
  line: number;
  runnable: boolean;
}

/** Every ```ts block of a Markdown document; `// not runnable` marks one the test does not run. */
export const codeBlocks = (markdown: string): CodeBlock[] =>
  [...markdown.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => ({
    code: m[1]!,
    line: markdown.slice(0, m.index + m[0].indexOf("\n") + 1).split("\n").length,
    runnable: !m[1]!.includes("// not runnable"),
  }));

const builtins = new Set(builtinModules);

/** The package a module specifier names (`@scope/name/sub` → `@scope/name`); undefined for builtins and relative paths. */
export const packageOf = (specifier: string): string | undefined => {
  if (specifier.startsWith(".") || specifier.startsWith("/") || specifier.startsWith("node:"))
    return undefined;
  const parts = specifier.split("/");
  const name = specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]!;
  return builtins.has(name) ? undefined : name;
};

/** Packages the code imports (static, `export … from`, dynamic `import("…")`). */
export const importedPackages = (code: string): string[] => {
  const { importedFiles } = ts.preProcessFile(code, true, true);
  const names = importedFiles.map((f) => packageOf(f.fileName)).filter((n) => n !== undefined);
  return [...new Set(names)].sort();
};

/**
 * Packages the document's ```sh blocks install into a project: every `npm install` / `npm i` /
 * `npm add` command, with versions stripped (`zod@^4` → `zod`). A global install (`-g`) makes
 * nothing importable, so it does not count.
 */
export const installedPackages = (markdown: string): string[] => {
  const names = new Set<string>();
  for (const [, block] of markdown.matchAll(/```sh\n([\s\S]*?)```/g)) {
    for (const line of block!.split("\n")) {
      for (const command of line.replace(/#.*$/, "").split(/&&|;|\|\|?/)) {
        const words = command.trim().split(/\s+/);
        if (words[0] !== "npm" || !["install", "i", "add"].includes(words[1] ?? "")) continue;
        const flags = words.slice(2).filter((w) => w.startsWith("-"));
        if (flags.includes("-g") || flags.includes("--global")) continue;
        for (const word of words.slice(2).filter((w) => !w.startsWith("-")))
          names.add(word.replace(/(.)@.*$/, "$1"));
      }
    }
  }
  return [...names].sort();
};

/**
 * A `console.log(…)` statement whose comment states what it prints: `// <output>` at the end of
 * the statement's last line, or `// → <output>` on the line right below it.
 */
export interface ExpectedOutput {
  /** Index into the code's console.log calls, as numbered by {@link instrument}. */
  id: number;
  /** Line of the comment in the code block (1-based). */
  line: number;
  expected: string;
}

/**
 * Rewrites every `console.log(` of the code to `__readmeLog(<id>)(` (same line, same arguments,
 * still printed through console.log) so the test knows which call printed what, and lists the calls
 * whose statement has an output comment (see {@link ExpectedOutput}).
 */
export const instrument = (code: string): { code: string; expected: ExpectedOutput[] } => {
  const source = ts.createSourceFile("example.ts", code, ts.ScriptTarget.Latest, true);
  const calls: ts.CallExpression[] = [];
  const visit = (node: ts.Node) => {
    if (
      ts.isCallExpression(node) &&
      ts.isPropertyAccessExpression(node.expression) &&
      node.expression.getText(source) === "console.log"
    )
      calls.push(node);
    ts.forEachChild(node, visit);
  };
  visit(source);
  const expected: ExpectedOutput[] = [];
  const lineOf = (pos: number) => source.getLineAndCharacterOfPosition(pos).line + 1;
  const textOf = (comment: ts.CommentRange) => code.slice(comment.pos + 2, comment.end).trim();
  calls.forEach((call, id) => {
    const statement = call.parent;
    if (!ts.isExpressionStatement(statement)) return;
    const line = lineOf(statement.end);
    const sameLine = ts
      .getTrailingCommentRanges(code, statement.end)
      ?.find((c) => c.kind === ts.SyntaxKind.SingleLineCommentTrivia);
    // On a line of its own, right below, only a comment starting with → is output.
    const below = ts
      .getLeadingCommentRanges(code, statement.end)
      ?.find((c) => lineOf(c.pos) === line + 1 && textOf(c).startsWith("→"));
    const comment = sameLine ?? below;
    const text = comment && textOf(comment).replace(/^→\s*/, "");
    if (text) expected.push({ id, line: lineOf(comment.pos), expected: text });
  });
  let out = code;
  for (const [id, call] of [...calls.entries()].reverse())
    out =
      out.slice(0, call.expression.getStart(source)) +
      `globalThis.__readmeLog(${id})` +
      out.slice(call.expression.end);
  return { code: out, expected };
};

/** What console.log prints for these arguments, without colours. */
export const printed = (args: unknown[]) => formatWithOptions({ colors: false }, ...args);

// Whitespace-insensitive, and a comment may quote strings with " where util.inspect prints '.
const normalise = (text: string) => text.replace(/\s+/g, "").replaceAll('"', "'");

/**
 * Whether the printed output matches the comment: compared without whitespace, with `…` in the
 * comment standing for any text (an id, a host name, a duration).
 */
export const matchesComment = (output: string, comment: string): boolean => {
  const pattern = normalise(comment)
    .split("…")
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
    .join(".*");
  return new RegExp(`^${pattern}$`, "s").test(normalise(output));
};

/** One output comment that does not hold: what the line says and what it printed. */
export interface OutputMismatch {
  line: number;
  expected: string;
  printed: string | undefined;
}

/**
 * Compares what each commented console.log call printed (all its prints, joined by newlines when
 * it ran more than once) with its comment; a call that never printed is a mismatch too.
 */
export const outputMismatches = (
  expected: readonly ExpectedOutput[],
  prints: ReadonlyMap<number, string[]>,
): OutputMismatch[] =>
  expected.flatMap(({ id, line, expected: comment }) => {
    const output = prints.get(id)?.join("\n");
    return output !== undefined && matchesComment(output, comment)
      ? []
      : [{ line, expected: comment, printed: output }];
  });
