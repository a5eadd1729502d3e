// Which priced breeds govern a repository's content: the repository itself when it is a priced
// breed, and the breeds its content came from (InheritedTerms). The platform decides reads with it;
// the germline refuses to promote such content into its free head.
import type { Database } from './prisma';

export async function pricedBreedsGoverning(
  db: Database,
  repository: string,
): Promise<Array<{ repository: string; ownerId: string }>> {
  return db.breed.findMany({
    where: { price: { not: null }, OR: [{ repository }, { inheritors: { some: { repository } } }] },
    select: { repository: true, ownerId: true },
    orderBy: { repository: 'asc' },
  });
}
