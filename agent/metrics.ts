/**
 * The agent's metrics in the Prometheus text format (version 0.0.4), served on the internal listener
 * only. A deliberately small registry: counters with labels, one latency histogram, gauges read at
 * scrape time. Label values come from fixed sets (route names, status codes, error codes), never from
 * request data, so the series count stays bounded.
 */

/** NSM latency buckets in seconds: a real attestation takes a few ms, QEMU's about 5 ms, a stuck one 120 s. */
const NSM_LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];

export interface Metrics {
  countRequest(route: string, status: number): void;
  observeNsm(seconds: number, outcome: string): void;
  countUpstreamError(kind: string): void;
  /** Registers a gauge whose value is read at every scrape. */
  gauge(name: string, help: string, read: () => number): void;
  render(): string;
}

function labels(pairs: Record<string, string | number>): string {
  return Object.entries(pairs)
    .map(([key, value]) => `${key}="${String(value).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
    .join(',');
}

export function createMetrics(): Metrics {
  const requests = new Map<string, number>();
  const requestKeys = new Map<string, Map<number, string>>();
  const upstreamErrors = new Map<string, number>();
  const nsmOutcomes = new Map<string, number>();
  const bucketCounts = new Array<number>(NSM_LATENCY_BUCKETS.length).fill(0);
  let nsmCount = 0;
  let nsmSum = 0;
  const gauges: Array<{ name: string; help: string; read: () => number }> = [];
  const bump = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1);

  return {
    countRequest(route, status) {
      // Counted per request: the label text is made once per (route, status), not on every call.
      let byStatus = requestKeys.get(route);
      if (byStatus === undefined) requestKeys.set(route, (byStatus = new Map()));
      let key = byStatus.get(status);
      if (key === undefined) byStatus.set(status, (key = labels({ route, status })));
      bump(requests, key);
    },
    observeNsm(seconds, outcome) {
      nsmCount += 1;
      nsmSum += seconds;
      NSM_LATENCY_BUCKETS.forEach((bound, i) => {
        if (seconds <= bound) bucketCounts[i]! += 1;
      });
      bump(nsmOutcomes, labels({ outcome }));
    },
    countUpstreamError(kind) {
      bump(upstreamErrors, labels({ kind }));
    },
    gauge(name, help, read) {
      gauges.push({ name, help, read });
    },
    render() {
      const lines: string[] = [];
      const family = (name: string, type: string, help: string, samples: Map<string, number>) => {
        lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
        for (const [key, value] of samples) lines.push(`${name}{${key}} ${value}`);
      };
      family('enclave_agent_http_requests_total', 'counter', 'HTTP requests by route and status.', requests);
      family('enclave_agent_nsm_requests_total', 'counter', 'NSM attestation calls by outcome.', nsmOutcomes);
      lines.push('# HELP enclave_agent_nsm_latency_seconds NSM attestation latency.', '# TYPE enclave_agent_nsm_latency_seconds histogram');
      NSM_LATENCY_BUCKETS.forEach((bound, i) => lines.push(`enclave_agent_nsm_latency_seconds_bucket{le="${bound}"} ${bucketCounts[i]}`));
      lines.push(`enclave_agent_nsm_latency_seconds_bucket{le="+Inf"} ${nsmCount}`, `enclave_agent_nsm_latency_seconds_sum ${nsmSum}`, `enclave_agent_nsm_latency_seconds_count ${nsmCount}`);
      family('enclave_agent_upstream_errors_total', 'counter', 'Failed calls to the app by kind.', upstreamErrors);
      for (const g of gauges) lines.push(`# HELP ${g.name} ${g.help}`, `# TYPE ${g.name} gauge`, `${g.name} ${g.read()}`);
      return `${lines.join('\n')}\n`;
    },
  };
}
