// The api service, reached through the same origin as the page: the platform rewrites
// <base>api/* to the api service (slipway.toml, [[services.web.rewrites]]), so the
// browser needs no CORS and the page no host name. VITE_API_BASE, set at build time,
// points it elsewhere (e.g. http://api.bytomorrow.localhost:8080/api; the api allows
// any origin).
export const API_BASE = (import.meta.env.VITE_API_BASE || `${import.meta.env.BASE_URL}api`).replace(/\/+$/, '');

export class ApiError extends Error {}

async function getJson(path, params, signal) {
  const query = params ? `?${new URLSearchParams(params)}` : '';
  const url = `${API_BASE}${path}${query}`;
  let response;
  try {
    response = await fetch(url, { signal, headers: { Accept: 'application/json' } });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(`GET ${url} failed: ${e.message}`);
  }
  const type = response.headers.get('Content-Type') || '';
  const body = await response.text();
  let json;
  try {
    json = type.includes('json') ? JSON.parse(body) : undefined;
  } catch {
    json = undefined;
  }
  // Not the api's JSON: the static site answered (its 404, or index.html), so the
  // rewrite of API_BASE to the api service is missing.
  const notApi = `is ${API_BASE}/ routed to the api service?`;
  if (!response.ok) {
    const detail = json && typeof json.detail === 'string' ? `: ${json.detail}` : json ? '' : ` (not the api's JSON: ${notApi})`;
    throw new ApiError(`GET ${url} answered ${response.status}${detail}`);
  }
  if (json === undefined) {
    throw new ApiError(`GET ${url} answered ${type || 'no Content-Type'}, not JSON: ${notApi}`);
  }
  return json;
}

// {"params": ["60M", ...], "metrics": ["accuracy", "loss"], "data_sources": ["c4", "pile"]}
export function fetchOptions(signal) {
  return getJson('/visualize/options', null, signal);
}

// {"metric", "data_source", "series": [{"name", "params_numeric", "points": [{"step", "value"}]}]}
export function fetchSeries({ dataSource, metric, params }, signal) {
  return getJson('/visualize/data', { data_source: dataSource, metric, params: params.join(',') }, signal);
}
