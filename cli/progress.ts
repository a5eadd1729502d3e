// Progress for `computatrum pull`: one bar per file and a total on a terminal, plain lines elsewhere.
import type { PullProgress } from '../store/pull';

function bytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

function bar(done: number, size: number, width = 24): string {
  const filled = size === 0 ? width : Math.round((done / size) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${size === 0 ? 100 : Math.floor((done / size) * 100)}%`;
}

export class PullProgressView {
  private readonly files = new Map<string, PullProgress>();
  private drawn = 0;
  private lastDraw = 0;

  constructor(private readonly out: NodeJS.WriteStream) {}

  private totalFiles = 0;

  start(files: number): void {
    this.totalFiles = files;
  }

  update(progress: PullProgress): void {
    this.files.set(progress.file, progress);
    if (!this.out.isTTY) {
      if (progress.state !== 'downloading')
        this.out.write(`${progress.state} ${progress.file} (${bytes(progress.size)})\n`);
      return;
    }
    const now = Date.now();
    if (progress.state === 'downloading' && now - this.lastDraw < 100) return; // redraw at most 10 times a second
    this.lastDraw = now;
    this.draw();
  }

  finish(): void {
    if (this.out.isTTY) this.draw();
  }

  private draw(): void {
    const lines = [...this.files.values()].map(
      (p) =>
        `${bar(p.done, p.size)} ${p.file} ${bytes(p.done)}/${bytes(p.size)} ${p.state === 'downloading' ? '' : p.state}`,
    );
    const done = [...this.files.values()].reduce((sum, p) => sum + p.done, 0);
    const size = [...this.files.values()].reduce((sum, p) => sum + p.size, 0);
    const finished = [...this.files.values()].filter((p) => p.state !== 'downloading').length;
    lines.push(`total ${bar(done, size)} ${finished}/${this.totalFiles} files, ${bytes(done)}`);
    if (this.drawn > 0) this.out.write(`\u001b[${this.drawn}F`); // back to the first line drawn last time
    this.out.write(lines.map((l) => `\u001b[2K${l}`).join('\n') + '\n');
    this.drawn = lines.length;
  }
}
