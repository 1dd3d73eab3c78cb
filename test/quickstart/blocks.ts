// The commands of a quickstart document: fenced blocks preceded by an HTML comment marker, so the
// same text reads normally on GitHub (the comments are invisible) and can be run by a test.
//
//   <!-- quickstart: run id=NAME -->      a shell block, run to completion (exit 0)
//   <!-- quickstart: server -->           a shell block that starts a long-running process
//   <!-- quickstart: stdin for=NAME -->   text fed to the standard input of run block NAME

export interface QuickstartBlock {
  kind: 'run' | 'server' | 'stdin';
  /** id= of a run block, for= of a stdin block. */
  name?: string;
  text: string;
  /** 1-based line of the marker in the document. */
  line: number;
}

const MARKED = /<!--\s*quickstart:\s*(run|server|stdin)([^>]*?)-->\s*\n```[\w-]*\n([\s\S]*?)\n```/g;

export function quickstartBlocks(markdown: string): QuickstartBlock[] {
  const blocks: QuickstartBlock[] = [];
  for (const match of markdown.matchAll(MARKED)) {
    const kind = match[1] as QuickstartBlock['kind'];
    const attrs = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1], m[2]]));
    const name = attrs.id ?? attrs.for;
    blocks.push({ kind, ...(name ? { name } : {}), text: match[3] ?? '', line: markdown.slice(0, match.index).split('\n').length });
  }
  return blocks;
}

/** The one postgres:// URL the document uses as "your database". */
export function documentPostgresUrl(blocks: readonly QuickstartBlock[]): string {
  const urls = new Set(blocks.flatMap((b) => [...b.text.matchAll(/postgres(?:ql)?:\/\/[^\s"']+/g)].map((m) => m[0])));
  if (urls.size !== 1) throw new Error(`the quickstart should use exactly one PostgreSQL URL, found ${urls.size}: ${[...urls].join(', ')}`);
  return [...urls][0] as string;
}
