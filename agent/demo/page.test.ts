/**
 * The demo page (page.ts) as text: its inline module script parses (it is JavaScript inside a TypeScript
 * template literal, so an escape slip only shows in a browser otherwise), the embedded config cannot end
 * its <script> element early, and the elements the script and the browser tests use are there.
 */

import { transformSync } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { renderDemoPage } from './page.js';

const html = renderDemoPage({ keyExchange: 'X25519', pcrPolicy: { kind: 'tofu' }, root: '-----BEGIN CERTIFICATE-----\n</script><b>\n-----END CERTIFICATE-----\n' });

describe('renderDemoPage', () => {
  it('has an inline module script that parses', () => {
    const scripts = [...html.matchAll(/<script type="module">([\s\S]*?)<\/script>/g)].map((match) => match[1]!);
    expect(scripts).toHaveLength(1);
    expect(() => transformSync(scripts[0]!, { format: 'esm', loader: 'js' })).not.toThrow();
    // The SSE parsing splits on real line breaks, not on a backslash and an n.
    expect(scripts[0]).toContain(".split('\\n\\n')");
  });

  it('embeds the config so that it cannot close its script element', () => {
    const config = /<script type="application\/json" id="steve-config">([\s\S]*?)<\/script>/.exec(html)![1]!;
    expect(config).not.toContain('<');
    expect(JSON.parse(config).root).toContain('</script><b>');
  });

  it('has the prompt, the answer area and the widget', () => {
    for (const fragment of ['id="prompt"', 'id="generate"', 'id="answer"', 'id="answer-status"', '<steve-attestation>', 'id="output"']) expect(html).toContain(fragment);
  });
});
