// Package deploy holds no code: its tests validate the deployment files of
// AMS offline, with the real parsers, since no Docker engine or cluster is at
// hand:
//
//   - deploy/docker/Dockerfile is parsed and linted by BuildKit's parser, and
//     the go build commands of its build stage run as written
//     (CGO_ENABLED=0, GOWORK=off), producing every binary the image copies;
//   - docker-compose.yml is loaded by compose-go, as docker compose loads it;
//   - every overlay under deploy/k8s is built by kustomize (krusty) and each
//     object strict-decoded with client-go's scheme, then checked: probes,
//     security contexts, resources, HPA, PDB, NATS cluster, NetworkPolicy
//     paths, Ingress timeouts, image tags;
//   - the environment variables the files set are checked against the flags
//     the binaries print with -h, and nats.conf against nats-server's own
//     configuration parser.
//
// The command deploy/cmd/healthcheck is the probe binary in every image.
package deploy
