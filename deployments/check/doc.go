// Package check holds the tests that keep the deployments honest: the Helm
// chart (helm/mu) rendered with each of its ci values files is decoded
// strictly into the Kubernetes API types and cross-checked, and every
// config that the chart renders or the compose file (deployments/) sets is
// run through the service binaries' own loader with --check-config, so the
// chart, the compose file and the binaries cannot drift apart.
package check
