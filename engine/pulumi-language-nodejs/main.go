// pulumi-language-nodejs: the Node.js language host the Pulumi engine starts to run this
// project's program.
//
// Pulumi's own host (module github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3)
// is not served by the Go module proxy these machines reach, so this is a small one of our
// own, written against the same gRPC contract (sdk/v3 proto/go). It does what the engine
// needs for preview, up, refresh and destroy: it runs @pulumi/pulumi's `cmd/run` with node,
// passing the monitor and engine addresses, config and secret keys the way that script
// reads them, honours Pulumi.yaml's `nodeargs` and `typescript` options, and maps the
// script's exit codes (0, 32 = error already reported, other) onto RunResponse.
//
// Deliberately left out, because nothing here uses them: plugin discovery from
// node_modules (GetRequiredPackages answers an empty list and the engine loads each
// provider when a resource first needs it), `pulumi new`/`convert`/`package` support,
// dependency installation and `pulumi about` details.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// version is the Pulumi release whose contract this host follows (set by the build script).
var version = "3.248.0"

// exitAfterReportedError is the code @pulumi/pulumi's cmd/run exits with once it has
// reported the program's error to the engine itself: the host must not report it again.
const exitAfterReportedError = 32

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engineAddress string

	mu       sync.Mutex
	programs map[*exec.Cmd]struct{}
}

func main() {
	// The engine passes flags of its own (-root, -tracing, …) before the engine address;
	// accept and ignore the ones this host has no use for.
	fs := flag.NewFlagSet("pulumi-language-nodejs", flag.ContinueOnError)
	fs.String("root", "", "project root (unused)")
	fs.String("tracing", "", "tracing endpoint (unused)")
	fs.Bool("typescript", false, "unused: read from Pulumi.yaml runtime options")
	fs.String("tsconfig", "", "unused: read from Pulumi.yaml runtime options")
	fs.String("nodeargs", "", "unused: read from Pulumi.yaml runtime options")
	fs.Bool("logtostderr", false, "unused")
	fs.String("v", "", "unused")
	if err := fs.Parse(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(2)
	}
	h := &host{programs: map[*exec.Cmd]struct{}{}}
	if fs.NArg() > 0 {
		h.engineAddress = fs.Arg(fs.NArg() - 1)
	}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(s *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(s, h)
			return nil
		},
		Options: []grpc.ServerOption{grpc.MaxRecvMsgSize(400 * 1024 * 1024)},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "error: could not start the language host:", err)
		os.Exit(1)
	}
	// The engine reads the port from the first line of stdout.
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func (h *host) Handshake(ctx context.Context, req *pulumirpc.LanguageHandshakeRequest) (*pulumirpc.LanguageHandshakeResponse, error) {
	if req.GetEngineAddress() != "" {
		h.engineAddress = req.GetEngineAddress()
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

func (h *host) GetRequiredPlugins(context.Context, *pulumirpc.GetRequiredPluginsRequest) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return &pulumirpc.GetRequiredPluginsResponse{}, nil
}

func (h *host) GetRequiredPackages(context.Context, *pulumirpc.GetRequiredPackagesRequest) (*pulumirpc.GetRequiredPackagesResponse, error) {
	return &pulumirpc.GetRequiredPackagesResponse{}, nil
}

// runScript finds @pulumi/pulumi's cmd/run from the program folder upwards, as node's own
// module resolution would.
func runScript(programDir string) (string, error) {
	for dir := programDir; ; dir = filepath.Dir(dir) {
		candidate := filepath.Join(dir, "node_modules", "@pulumi", "pulumi", "cmd", "run")
		if _, err := os.Stat(filepath.Join(candidate, "index.js")); err == nil {
			return candidate, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("@pulumi/pulumi is not installed for the program in %s: run `npm ci` there first", programDir)
		}
	}
}

// options reads the runtime options Pulumi.yaml gives (runtime.options): nodeargs and typescript.
func options(info *pulumirpc.ProgramInfo) (nodeargs []string, typescript bool) {
	typescript = true // Pulumi's default for Node.js projects
	if info == nil || info.GetOptions() == nil {
		return nil, typescript
	}
	opts := info.GetOptions().AsMap()
	if s, ok := opts["nodeargs"].(string); ok {
		nodeargs = strings.Fields(s)
	}
	if b, ok := opts["typescript"].(bool); ok {
		typescript = b
	}
	return nodeargs, typescript
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	programDir := req.GetPwd()
	if req.GetInfo() != nil && req.GetInfo().GetProgramDirectory() != "" {
		programDir = req.GetInfo().GetProgramDirectory()
	}
	script, err := runScript(programDir)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	nodeargs, typescript := options(req.GetInfo())

	args := append([]string{}, nodeargs...)
	args = append(args, script, "--monitor="+req.GetMonitorAddress())
	if h.engineAddress != "" {
		args = append(args, "--engine="+h.engineAddress)
	}
	args = append(args, "--project="+req.GetProject(), "--stack="+req.GetStack(), "--pwd="+req.GetPwd())
	if req.GetOrganization() != "" {
		args = append(args, "--organization="+req.GetOrganization())
	}
	if req.GetInfo() != nil && req.GetInfo().GetRootDirectory() != "" {
		args = append(args, "--root-directory="+req.GetInfo().GetRootDirectory())
	}
	if req.GetDryRun() {
		args = append(args, "--dry-run")
	}
	if req.GetParallel() > 0 {
		args = append(args, "--parallel="+strconv.Itoa(int(req.GetParallel())))
	}
	program := req.GetProgram()
	if program == "" {
		program = "."
	}
	args = append(args, program)
	args = append(args, req.GetArgs()...)

	config, err := json.Marshal(req.GetConfig())
	if err != nil {
		return nil, err
	}
	secretKeys, err := json.Marshal(req.GetConfigSecretKeys())
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("node", args...)
	cmd.Dir = req.GetPwd()
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(),
		"PULUMI_CONFIG="+string(config),
		"PULUMI_CONFIG_SECRET_KEYS="+string(secretKeys),
		"PULUMI_NODEJS_TYPESCRIPT="+strconv.FormatBool(typescript),
	)
	if err := cmd.Start(); err != nil {
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("could not start node: %v", err)}, nil
	}
	h.mu.Lock()
	h.programs[cmd] = struct{}{}
	h.mu.Unlock()
	err = cmd.Wait()
	h.mu.Lock()
	delete(h.programs, cmd)
	h.mu.Unlock()

	var exit *exec.ExitError
	switch {
	case err == nil:
		return &pulumirpc.RunResponse{}, nil
	case errors.As(err, &exit) && exit.ExitCode() == exitAfterReportedError:
		return &pulumirpc.RunResponse{Bail: true}, nil
	case errors.As(err, &exit) && exit.ExitCode() >= 0:
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exit.ExitCode())}, nil
	case errors.As(err, &exit):
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program was stopped: %v", exit)}, nil
	default:
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
}

// Cancel passes the engine's cancellation (Ctrl-C) on to running programs.
func (h *host) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for cmd := range h.programs {
		_ = cmd.Process.Signal(syscall.SIGINT)
	}
	return &emptypb.Empty{}, nil
}
