"""The prepare stage: datasets (generated, packaged, local, Hub) read into common records,
split and decontaminated (datasets/)."""
