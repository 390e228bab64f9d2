/**
 * The metrics registry (agent/metrics.ts) renders the Prometheus text format, version 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/): the exact text for a small scenario,
 * label values escaped as the format requires (backslash, double quote, line feed), histogram buckets
 * cumulative with `le` inclusive, and gauges read at scrape time.
 */

import { describe, expect, it } from 'vitest';
import { createMetrics } from './metrics.js';

const BUCKETS = ['0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '10'];

describe('createMetrics', () => {
  it('renders this exact text for a small scenario', () => {
    const metrics = createMetrics();
    metrics.countRequest('attestation', 200);
    metrics.countRequest('attestation', 200);
    metrics.countRequest('attestation', 400);
    metrics.countRequest('health', 200);
    // Powers of two, so the sum is exact: 2^-8 s lands in le=0.005, 0.25 s in le=0.25 (le is inclusive).
    metrics.observeNsm(0.00390625, 'ok');
    metrics.observeNsm(0.25, 'error');
    metrics.countUpstreamError('ECONNREFUSED');
    let sessions = 3;
    metrics.gauge('enclave_agent_test_sessions', 'Sessions for the test.', () => sessions);

    const bucketCounts = [0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2];
    const expected = [
      '# HELP enclave_agent_http_requests_total HTTP requests by route and status.',
      '# TYPE enclave_agent_http_requests_total counter',
      'enclave_agent_http_requests_total{route="attestation",status="200"} 2',
      'enclave_agent_http_requests_total{route="attestation",status="400"} 1',
      'enclave_agent_http_requests_total{route="health",status="200"} 1',
      '# HELP enclave_agent_nsm_requests_total NSM attestation calls by outcome.',
      '# TYPE enclave_agent_nsm_requests_total counter',
      'enclave_agent_nsm_requests_total{outcome="ok"} 1',
      'enclave_agent_nsm_requests_total{outcome="error"} 1',
      '# HELP enclave_agent_nsm_latency_seconds NSM attestation latency.',
      '# TYPE enclave_agent_nsm_latency_seconds histogram',
      ...BUCKETS.map((le, i) => `enclave_agent_nsm_latency_seconds_bucket{le="${le}"} ${bucketCounts[i]}`),
      'enclave_agent_nsm_latency_seconds_bucket{le="+Inf"} 2',
      'enclave_agent_nsm_latency_seconds_sum 0.25390625',
      'enclave_agent_nsm_latency_seconds_count 2',
      '# HELP enclave_agent_upstream_errors_total Failed calls to the app by kind.',
      '# TYPE enclave_agent_upstream_errors_total counter',
      'enclave_agent_upstream_errors_total{kind="ECONNREFUSED"} 1',
      '# HELP enclave_agent_test_sessions Sessions for the test.',
      '# TYPE enclave_agent_test_sessions gauge',
      'enclave_agent_test_sessions 3',
      '',
    ].join('\n');
    expect(metrics.render()).toBe(expected);

    sessions = 5;
    expect(metrics.render()).toContain('\nenclave_agent_test_sessions 5\n');
  });

  it('renders a valid, empty registry before anything happened', () => {
    const text = createMetrics().render();
    expect(text.endsWith('\n')).toBe(true);
    expect(text).toContain('enclave_agent_nsm_latency_seconds_count 0\n');
    expect(text).toContain('enclave_agent_nsm_latency_seconds_bucket{le="+Inf"} 0\n');
    // Families without samples still declare themselves, and nothing else appears for them.
    expect(text).toContain('# TYPE enclave_agent_http_requests_total counter\n# HELP enclave_agent_nsm_requests_total');
  });

  it('escapes backslash, double quote and line feed in label values', () => {
    const metrics = createMetrics();
    metrics.countRequest('a\\b"c\nd', 200);
    metrics.countUpstreamError('"\\\n');
    const text = metrics.render();
    expect(text).toContain('enclave_agent_http_requests_total{route="a\\\\b\\"c\\nd",status="200"} 1\n');
    expect(text).toContain('enclave_agent_upstream_errors_total{kind="\\"\\\\\\n"} 1\n');
    // Escaping keeps every sample on one line.
    for (const line of text.split('\n').filter((l) => l !== '' && !l.startsWith('#'))) {
      expect(line).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*",?)*\})? \S+$/);
    }
  });

  it('counts each distinct label set separately', () => {
    const metrics = createMetrics();
    metrics.countRequest('x', 200);
    metrics.countRequest('x', 200);
    metrics.countRequest('x"', 200);
    const text = metrics.render();
    expect(text).toContain('enclave_agent_http_requests_total{route="x",status="200"} 2\n');
    expect(text).toContain('enclave_agent_http_requests_total{route="x\\"",status="200"} 1\n');
  });

  it('histogram buckets are cumulative and le is inclusive at every bound', () => {
    const metrics = createMetrics();
    for (const le of BUCKETS) metrics.observeNsm(Number(le), 'ok');
    metrics.observeNsm(11, 'ok');
    const text = metrics.render();
    BUCKETS.forEach((le, i) => expect(text).toContain(`enclave_agent_nsm_latency_seconds_bucket{le="${le}"} ${i + 1}\n`));
    expect(text).toContain('enclave_agent_nsm_latency_seconds_bucket{le="+Inf"} 13\n');
    expect(text).toContain('enclave_agent_nsm_latency_seconds_count 13\n');
  });
});
