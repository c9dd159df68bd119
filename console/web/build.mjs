// Builds the console into ../dist (committed; the Go binary embeds it): app.js (the page, with
// Preact and dagre bundled in), app.css, index.html, favicon.svg and the bundled packages'
// licenses. The build is deterministic: the same sources and lock file give the same bytes.
//
//   node build.mjs           write ../dist
//   node build.mjs --check   build into a temporary folder; fail when ../dist differs
//
// app.js starts with the digest of every file under web/ but node_modules/ (sorted by path,
// each as "path\0size\0" then its bytes); console/bundle_test.go recomputes it, so a source
// edited without a rebuild fails `go test` even where npm is not installed.
import * as esbuild from "esbuild";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const web = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(web, "..", "dist");
const licensed = ["preact", "@dagrejs/dagre", "@dagrejs/graphlib"];

function sourceFiles(dir = web, rel = "") {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) {
      if (r !== "node_modules") out.push(...sourceFiles(path.join(dir, e.name), r));
    } else if (e.isFile()) {
      out.push(r);
    }
  }
  return out;
}

function sourcesDigest() {
  const h = createHash("sha256");
  for (const r of sourceFiles().sort()) {
    const b = fs.readFileSync(path.join(web, r));
    h.update(`${r}\0${b.length}\0`);
    h.update(b);
  }
  return h.digest("hex");
}

function licenses() {
  let text = "Third-party packages bundled into app.js, with their licenses.\n";
  for (const name of licensed) {
    const dir = path.join(web, "node_modules", name);
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
    const file = fs.readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
    if (!file) throw new Error(`${name}: no LICENSE file to bundle`);
    text += `\n== ${name} ${pkg.version} (${pkg.license}) ==\n\n`;
    text += fs.readFileSync(path.join(dir, file), "utf8").trim() + "\n";
  }
  return text;
}

async function build(out) {
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  await esbuild.build({
    absWorkingDir: web,
    entryPoints: { app: "src/main.tsx" },
    outdir: out,
    bundle: true,
    minify: true,
    format: "iife",
    target: ["chrome111", "firefox115", "safari16.4"],
    jsx: "automatic",
    jsxImportSource: "preact",
    charset: "utf8",
    legalComments: "none",
    logLevel: "warning",
    banner: {
      js: `/* flowwatch console; built by \`make console\` from web/ sources sha256:${sourcesDigest()} */`,
    },
  });
  fs.copyFileSync(path.join(web, "index.html"), path.join(out, "index.html"));
  fs.copyFileSync(path.join(web, "public", "favicon.svg"), path.join(out, "favicon.svg"));
  fs.writeFileSync(path.join(out, "THIRD_PARTY_LICENSES.txt"), licenses());
}

function listing(dir) {
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
}

if (process.argv.includes("--check")) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "flowwatch-console-"));
  try {
    await build(tmp);
    const stale = [];
    const names = new Set([...listing(tmp), ...listing(dist)]);
    for (const n of [...names].sort()) {
      const a = path.join(tmp, n);
      const b = path.join(dist, n);
      if (!fs.existsSync(a) || !fs.existsSync(b) || !fs.readFileSync(a).equals(fs.readFileSync(b))) stale.push(n);
    }
    if (stale.length > 0) {
      console.error(`console/dist is stale (differs from a fresh build: ${stale.join(", ")}); run \`make console\` and commit console/dist`);
      process.exit(1);
    }
    console.log("console/dist matches a fresh build");
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
} else {
  await build(dist);
}
