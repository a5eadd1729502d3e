// What a training run costs: GPU-seconds (whole numbers) × the run's rate per GPU-hour, in integer
// minor units, rounded up to the next minor unit and never above the run's cap. Pure: the
// workflow and the CLI both use it.

const SECONDS_PER_HOUR = 3600n;

/** The cost of `gpuSeconds` at `ratePerGpuHour` minor units, rounded up, at most `maxCost`. */
export function trainingCost(gpuSeconds: number, ratePerGpuHour: bigint, maxCost: bigint): bigint {
  if (!Number.isSafeInteger(gpuSeconds) || gpuSeconds < 0)
    throw new RangeError(`GPU-seconds must be a whole number >= 0, got ${gpuSeconds}`);
  const exact = BigInt(gpuSeconds) * ratePerGpuHour;
  const cost = (exact + SECONDS_PER_HOUR - 1n) / SECONDS_PER_HOUR;
  return cost < maxCost ? cost : maxCost;
}

/** The GPU-seconds that `maxCost` buys at `ratePerGpuHour`: the runner stops the job there. */
export function gpuSecondsForCost(maxCost: bigint, ratePerGpuHour: bigint): number {
  if (ratePerGpuHour <= 0n) throw new RangeError('the GPU rate must be above zero');
  return Number((maxCost * SECONDS_PER_HOUR) / ratePerGpuHour);
}
