// Module hooks for scripts/program-loader.mjs (they run on node's loader thread): a project
// `.ts` file resolves to its compiled `.js` in the build folder, which the loader found fresh.
let project = '';
let build = '';

export function initialize(data) {
  ({ project, build } = data);
}

export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  const { url } = r;
  if (url.startsWith(project) && url.endsWith('.ts') && !url.startsWith(build) && !url.includes('/node_modules/')) {
    return { ...r, url: `${build}${url.slice(project.length, -'.ts'.length)}.js`, format: 'module' };
  }
  return r;
}
