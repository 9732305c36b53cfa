# A stand-in for the official python slim image, for machines that cannot pull it:
# Debian bookworm's Python 3.11 on a debootstrap base. Only ever pushed to a local test
# registry. Built by .ci/docker-up.sh and tagged with the exact name of the Dockerfile's FROM.
FROM localhost/debian-base:bookworm
ARG CA_BUNDLE
# Package builds here go through the machine's re-signing HTTPS proxy: trust its CA.
COPY ${CA_BUNDLE} /etc/ssl/certs/host-ca-certificates.crt
ENV PIP_CERT=/etc/ssl/certs/host-ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/host-ca-certificates.crt
# DL3008 (pin apt versions) is ignored on purpose: the stand-in must track whatever
# bookworm ships today, as the real python image does; it never leaves the test machine.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-pip python3-venv \
 && rm -rf /var/lib/apt/lists/* /usr/lib/python3.11/EXTERNALLY-MANAGED \
 && ln -s /usr/bin/python3 /usr/local/bin/python \
 && ln -s /usr/bin/pip3 /usr/local/bin/pip
