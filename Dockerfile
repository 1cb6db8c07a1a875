# The controller image: a static binary on distroless, running as non-root.
# Not built by `make test` (CI has no container engine); build it where one runs:
#   docker build -t <registry>/aws-secret-controller:<tag> .
FROM golang:1.24 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd cmd
COPY pkg pkg
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /aws-secret-controller ./cmd/aws-secret-controller

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /aws-secret-controller /aws-secret-controller
USER 65532:65532
ENTRYPOINT ["/aws-secret-controller"]
