// The Bloom filter of archived children's names the germline carries: never a false "new name",
// rarely a needless question to PostgreSQL, and the same after a continue-as-new.
import { ArchivedNames } from '../../workflows/germline-names';

test('every added name is recognised, before and after the filter is carried; few new names look taken', () => {
  const names = new ArchivedNames();
  const archived = Array.from({ length: 10_000 }, (_, i) => `child-${i}`);
  for (const name of archived) names.add(name);
  const carried = new ArchivedNames(names.encoded());
  expect(names.encoded().length).toBeLessThanOrEqual(11_000);
  expect(carried.encoded()).toBe(names.encoded());
  expect(archived.every((name) => carried.mightHave(name))).toBe(true);
  const fresh = Array.from({ length: 10_000 }, (_, i) => `other-${i}`);
  const asked = fresh.filter((name) => carried.mightHave(name)).length;
  expect(asked / fresh.length).toBeLessThan(0.08);
  expect(new ArchivedNames().mightHave('child-1')).toBe(false);
});
