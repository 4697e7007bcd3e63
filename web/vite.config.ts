// Vite build of the browser UI into dist/, which the gateway embeds and CI
// rebuilds and compares: the output must be byte-identical for the same
// sources, and must run under `script-src 'self'; style-src 'self'`, so
// nothing is inlined (no inline script or style, no data: URLs, no
// module-preload polyfill). `npm run dev` proxies the API to a running
// vault (EVAULT_URL, default http://127.0.0.1:7400).
//
// @evault/client (../clients/typescript, linked by npm) is compiled from
// its TypeScript sources through its `@evault/source` export condition:
// the page needs no built copy of the package, and a change to the
// package shows in the next build or dev reload. Its dependencies are
// installed in its own node_modules by this package's postinstall.
import { defaultClientConditions, defineConfig } from "vite";

const vault = process.env["EVAULT_URL"] ?? "http://127.0.0.1:7400";

export default defineConfig({
  base: "/",
  resolve: {
    conditions: ["@evault/source", ...defaultClientConditions],
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    cssCodeSplit: false,
    sourcemap: false,
    reportCompressedSize: false,
  },
  server: {
    fs: { allow: [".", "../clients/typescript"] },
    proxy: {
      "/evault.v1.": vault,
      "/verifier-keys": vault,
    },
  },
});
