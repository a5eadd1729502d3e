// Finding and installing the Go tools, without building anything.
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { findTool, installTool, requireTool, TEMPORAL_CLI, ToolError } from '../../runtime/tools';

function fakeBinary(dir: string, name: string): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, name);
  writeFileSync(file, '#!/bin/sh\nexit 0\n');
  chmodSync(file, 0o755);
  return file;
}

const emptyEnv = { PATH: '/nonexistent' };

test('a tool is taken from its environment variable first, then the cache folder, then PATH', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'tools-'));
  const cached = fakeBinary(path.join(root, 'cache', 'bin'), 'temporal');
  const onPath = fakeBinary(path.join(root, 'path'), 'temporal');
  const named = fakeBinary(path.join(root, 'named'), 'temporal');
  expect(
    findTool(TEMPORAL_CLI, path.join(root, 'cache'), { PATH: path.join(root, 'path'), TEMPORAL_CLI_PATH: named }),
  ).toBe(named);
  expect(findTool(TEMPORAL_CLI, path.join(root, 'cache'), { PATH: path.join(root, 'path') })).toBe(cached);
  expect(findTool(TEMPORAL_CLI, path.join(root, 'none'), { PATH: path.join(root, 'path') })).toBe(onPath);
  expect(findTool(TEMPORAL_CLI, path.join(root, 'none'), emptyEnv)).toBeUndefined();
});

test('a missing tool tells the user how to get it', () => {
  expect(() => requireTool(TEMPORAL_CLI, '/nonexistent/tools', emptyEnv)).toThrow(
    'temporal is not installed: run `npm run tools` once (it builds it with Go into /nonexistent/tools/bin), or set TEMPORAL_CLI_PATH',
  );
  expect(() =>
    findTool(TEMPORAL_CLI, '/nonexistent/tools', { ...emptyEnv, TEMPORAL_CLI_PATH: '/nonexistent/temporal' }),
  ).toThrow('TEMPORAL_CLI_PATH=/nonexistent/temporal is not an executable file');
});

test('without Go, installing fails with a message naming Go and what to do', async () => {
  const install = installTool(TEMPORAL_CLI, mkdtempSync(path.join(tmpdir(), 'tools-')), () => undefined, {
    env: emptyEnv,
    goFallbacks: [],
  });
  await expect(install).rejects.toThrow(ToolError);
  await expect(install).rejects.toThrow('the Go toolchain (`go`) is missing');
});

test('an installed tool is reused, not rebuilt', async () => {
  const toolsDir = mkdtempSync(path.join(tmpdir(), 'tools-'));
  const cached = fakeBinary(path.join(toolsDir, 'bin'), 'temporal');
  const lines: string[] = [];
  expect(
    await installTool(TEMPORAL_CLI, toolsDir, (line) => lines.push(line), { env: emptyEnv, goFallbacks: [] }),
  ).toBe(cached);
  expect(lines).toEqual([`temporal: using ${cached}`]);
});
