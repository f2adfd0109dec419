// @ts-check
import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';

const nodeBuiltins = [
  'fs',
  'path',
  'os',
  'child_process',
  'crypto',
  'worker_threads',
  'http',
  'https',
  'net',
  'stream',
  'util',
  'events',
  'zlib',
  'process',
];

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      '.tools/**',
      '.data/**',
      '.venv*/**',
      'bin/**',
      '*.mjs',
      'bench/results/**',
    ],
  },
  eslint.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // Plain Node scripts (examples written as a user of the package would; build helpers; the mocha settings).
    files: ['examples/**/*.js', 'scripts/**/*.js', '.mocharc.cjs'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: {
        require: 'readonly',
        module: 'writable',
        process: 'readonly',
        console: 'readonly',
        __dirname: 'readonly',
      },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    // Workflow code runs in Temporal's deterministic sandbox: no node built-ins, no tfjs, no activities' implementations.
    files: ['workflows/**/*.ts', 'spec/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.flatMap((m) => [m, `node:${m}`]),
          patterns: [
            { group: ['@tensorflow/*'], message: 'tfjs is not allowed in workflow code' },
            { group: ['node:*'], message: 'node built-ins are not allowed in workflow code' },
            // activities/types is pure (interfaces and failure-type names); everything else there is Node code.
            {
              regex: '^\\.\\./activities(?!/types$)',
              message: 'workflows import activity types only',
              allowTypeImports: true,
            },
            {
              group: ['../training/*', '../checkpoint/*', '../cli/*'],
              message: 'workflows import only spec/ and activity types',
            },
            // storage/url is the pure half of storage (the scheme table and its parsing); the rest opens connections.
            { regex: '^\\.\\./storage(?!/url$)', message: 'spec/ and workflows import only storage/url' },
          ],
        },
      ],
    },
  },
);
