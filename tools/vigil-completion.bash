# SPDX-License-Identifier: MIT
# bash completion for vigil(1): verbs, each verb's options, and the values some options take.
# Installed as share/bash-completion/completions/vigil; plain compgen, no bash-completion helpers.

_vigil() {
        local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]} verb="" i
        for ((i = 1; i < COMP_CWORD; i++)); do
                case ${COMP_WORDS[i]} in
                -*) ;;
                *) verb=${COMP_WORDS[i]}; break ;;
                esac
        done

        if [[ -z $verb ]]; then
                mapfile -t COMPREPLY < <(compgen -W "run ps report shell supervise help --help --version" -- "$cur")
                return
        fi
        case $verb:$prev in
        run:--accel) mapfile -t COMPREPLY < <(compgen -W "auto kvm tcg" -- "$cur"); return ;;
        run:--guest-channel) mapfile -t COMPREPLY < <(compgen -W "fast reference" -- "$cur"); return ;;
        run:--log-level) mapfile -t COMPREPLY < <(compgen -W "debug info warning error" -- "$cur"); return ;;
        run:-o | run:--output-dir | supervise:-o | supervise:--output)
                mapfile -t COMPREPLY < <(compgen -d -- "$cur"); return ;;
        run:--boot-cache) mapfile -t COMPREPLY < <(compgen -d -- "$cur"); return ;;
        run:--spec | run:--junit) mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return ;;
        run:--node | run:--vlan | run:--global-timeout | run:--boot-timeout | run:--heartbeat) return ;;
        supervise:--log-target) mapfile -t COMPREPLY < <(compgen -W "auto journal stderr" -- "$cur"); return ;;
        esac
        local opts=""
        case $verb in
        run) opts="--node --spec --vlan --output-dir -o --junit --global-timeout --boot-timeout --boot-cache --heartbeat --interactive -I
                   --keep-vm-state --keep-machine-state -K --accel --guest-channel --log-level --quiet -q --verbose -v --no-pidns --help -h" ;;
        report | shell) opts="--help -h" ;;
        ps) opts="--json --help -h" ;;
        supervise) opts="--output -o --global-timeout --log-target --run-id --no-pidns --heartbeat --help -h" ;;
        esac
        if [[ $cur == -* ]]; then
                mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
        elif [[ $verb == report || $verb == ps || $verb == shell ]]; then
                mapfile -t COMPREPLY < <(compgen -d -- "$cur")
        else
                mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        fi
}
complete -F _vigil vigil
