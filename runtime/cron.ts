// Cron expressions as operators write them for computatrum's schedules: five fields (minute hour
// day-of-month month day-of-week), in UTC. Checked and previewed with the `cron` package before any
// reaches Temporal, so a bad one is refused at start with what was wrong, never by a schedule later.
import { CronTime, validateCronExpression } from 'cron';

/** Why `text` is no five-field cron expression, or undefined when it is one. */
export function cronProblem(text: string): string | undefined {
  const fields = text.trim().split(/\s+/);
  if (fields.length !== 5)
    return `"${text}" has ${fields.length} fields; write five: minute hour day-of-month month day-of-week, like "0 0 * * *"`;
  const { valid, error } = validateCronExpression(text.trim());
  return valid ? undefined : `"${text}" is not a cron expression: ${error?.message ?? 'it does not parse'}`;
}

/** The next `count` times (UTC) the expression fires after now. */
export function nextRuns(text: string, count: number): Date[] {
  const times = new CronTime(text.trim(), 'UTC').sendAt(count);
  return (Array.isArray(times) ? times : [times]).map((time) => time.toJSDate());
}
