// Builds the seed clients' test pages into pages/dist/ (run by `make seed-pages`).
//
// The seeds' code lives byte for byte in pages/seeds/ (test_seed_clients.py checks it against
// the seed documents). Some things are added here, at build time, without touching those files:
// a `.vue` loader (the single-file component is compiled with @vue/compiler-sfc, so the page
// needs no runtime template compiler and no `unsafe-eval`), and an `export` line after the React
// hook, which the seed declares as a plain function. Seed 000's SolidJS components (`.tsx`) get
// their types stripped by esbuild and their JSX compiled by Solid's own Babel preset (Solid's JSX
// is not React's), after the lines the seed leaves to its surroundings: imports and an export.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import babel from '@babel/core';
import { compileScript, compileTemplate, parse } from '@vue/compiler-sfc';
import solidPreset from 'babel-preset-solid';
import * as esbuild from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const pages = path.join(here, 'pages');

const vueSfc = {
  name: 'vue-sfc',
  setup(build) {
    build.onLoad({ filter: /\.vue$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      const filename = path.basename(args.path);
      const { descriptor, errors } = parse(source, { filename });
      if (errors.length) {
        return { errors: errors.map((e) => ({ text: String(e.message ?? e) })) };
      }
      const id = 'seed-' + filename.replace(/\W/g, '-');
      const script = compileScript(descriptor, { id, genDefaultAs: '__sfc__' });
      const template = compileTemplate({
        id,
        filename,
        source: descriptor.template.content,
        compilerOptions: { bindingMetadata: script.bindings },
      });
      if (template.errors.length) {
        return { errors: template.errors.map((e) => ({ text: String(e.message ?? e) })) };
      }
      const contents = [
        script.content,
        template.code,
        '__sfc__.render = render;',
        'export default __sfc__;',
      ].join('\n');
      return { contents, loader: 'js', resolveDir: path.dirname(args.path) };
    });
  },
};

const exportReactHook = {
  name: 'export-seed-hook',
  setup(build) {
    build.onLoad({ filter: /seeds[\\/]useChatRoom\.js$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      return { contents: source + '\nexport { useChatRoom };\n', loader: 'js' };
    });
  },
};

// What seed 000's Solid components use without importing it, and what the pages import.
const SOLID_SEEDS = {
  'useWebSocket.tsx': "\nimport { For } from 'solid-js';\nexport { Chat };\n",
  'Notifications.tsx': [
    '',
    "import { Show } from 'solid-js';",
    "import { useSSE } from './useSSE.ts';",
    "import { NotificationToast } from '../notification-toast.js';",
    'export { Notifications };',
    '',
  ].join('\n'),
};

const solidSeeds = {
  name: 'solid-seeds',
  setup(build) {
    build.onLoad({ filter: /seeds[\\/](useWebSocket|Notifications)\.tsx$/ }, async (args) => {
      const source = (await readFile(args.path, 'utf8')) + SOLID_SEEDS[path.basename(args.path)];
      const stripped = await esbuild.transform(source, {
        loader: 'tsx',
        jsx: 'preserve',
        sourcefile: args.path,
      });
      const compiled = await babel.transformAsync(stripped.code, {
        filename: args.path,
        babelrc: false,
        configFile: false,
        presets: [[solidPreset, { generate: 'dom' }]],
      });
      return { contents: compiled.code, loader: 'js', resolveDir: path.dirname(args.path) };
    });
  },
};

await esbuild.build({
  absWorkingDir: pages,
  entryPoints: {
    react: 'react-host.jsx',
    vue: 'vue-host.js',
    solid: 'solid-host.js',
    'seed-chat': 'seed-chat-host.js',
    'seed-notifications': 'seed-notifications-host.js',
  },
  outdir: path.join(pages, 'dist'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2020',
  jsx: 'automatic',
  minify: false,
  sourcemap: false,
  logLevel: 'warning',
  define: {
    'process.env.NODE_ENV': '"production"',
    __VUE_OPTIONS_API__: 'true',
    __VUE_PROD_DEVTOOLS__: 'false',
    __VUE_PROD_HYDRATION_MISMATCH_DETAILS__: 'false',
  },
  plugins: [vueSfc, exportReactHook, solidSeeds],
});
console.log('seed pages built into', path.relative(process.cwd(), path.join(pages, 'dist')) || '.');
