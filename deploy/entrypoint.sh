#!/bin/sh
# The image's entrypoint: secrets from files, the worker count from the CPUs, then the command.
#
#   NAME_FILE=/run/secrets/x   exports NAME with the file's content, for NAME = AUTH_*,
#                              RESOURCE_* or PGPASSWORD (Docker and Kubernetes secrets:
#                              AUTH_KEY_ENCRYPTION_KEY_FILE, PGPASSWORD_FILE, ...). Other *_FILE
#                              variables (SSL_CERT_FILE...) mean what they mean, untouched.
#   serve-auth [ARGS]          auth-server serve on 0.0.0.0:$PORT (default 8000)
#   serve-resource [ARGS]      resource-server serve on 0.0.0.0:$PORT (default 8001)
#                              both with --no-migrate (the one-shot `migrate` runs first) and
#                              $WEB_CONCURRENCY uvicorn workers (default: the CPUs this container
#                              may use, from its cgroup quota); on SIGTERM uvicorn stops accepting,
#                              finishes the requests in flight, runs the shutdown, then exits
#   migrate                    auth-server migrate, then resource-server migrate
#   anything else              run as is (auth-server users create ..., sh, ...)
set -eu

# Secrets from files: NAME_FILE -> NAME. Read with `cat`, so a trailing newline is dropped.
for name in $(env | sed -n -E 's/^((AUTH|RESOURCE)_[A-Z0-9_]*|PGPASSWORD)_FILE=.*/\1/p'); do
    eval "file=\${${name}_FILE}"
    if [ ! -r "$file" ]; then
        echo "error: ${name}_FILE names $file, which can't be read" >&2
        exit 1
    fi
    value=$(cat "$file")
    export "$name=$value"
    unset "${name}_FILE"
done

# The CPUs this container may use: the cgroup v2 (or v1) quota, else the CPUs online.
cpus() {
    if [ -r /sys/fs/cgroup/cpu.max ]; then
        read -r quota period < /sys/fs/cgroup/cpu.max
        if [ "$quota" != "max" ]; then
            echo $(((quota + period - 1) / period))
            return
        fi
    elif [ -r /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
        quota=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)
        period=$(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)
        if [ "$quota" -gt 0 ]; then
            echo $(((quota + period - 1) / period))
            return
        fi
    fi
    nproc
}

# Async workers are CPU-bound here (password hashing, RSA signing): one per CPU.
workers="${WEB_CONCURRENCY:-$(cpus)}"
[ "$workers" -ge 1 ] 2>/dev/null || workers=1

case "${1:-}" in
    serve-auth)
        shift
        exec auth-server serve --host 0.0.0.0 --port "${PORT:-8000}" --workers "$workers" \
            --no-migrate "$@"
        ;;
    serve-resource)
        shift
        exec resource-server serve --host 0.0.0.0 --port "${PORT:-8001}" --workers "$workers" \
            --no-migrate "$@"
        ;;
    migrate)
        auth-server migrate
        exec resource-server migrate
        ;;
    *)
        exec "$@"
        ;;
esac
