"""Plumbing every stage shares: params and their checks, the catalog of names, files, errors,
registries, Hub access, memory estimates and preflight, tracking, experiments, verification."""
