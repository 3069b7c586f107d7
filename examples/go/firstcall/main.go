// Command firstcall creates two tasks through a running toloka-gateway, waits for them, and prints the
// outcome as JSON: what `toloka-gateway client wait ID --log --json` prints, in Toloka's names and types
// ("status": "SUCCESS", integer counts).
//
//	./run.sh [--target HOST:PORT] [--pool-id ID]
//
// --target defaults to $GATEWAY_TARGET, else 127.0.0.1:50051; --pool-id to 1.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/golang/protobuf/jsonpb"
	"github.com/golang/protobuf/ptypes/duration"
	structpb "github.com/golang/protobuf/ptypes/struct"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	gatewayv1 "toloka/gateway/v1"
)

var images = []string{"https://example.com/1.png", "https://example.com/2.png"}

// newUUID is a random (version 4) UUID.
func newUUID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// tolokaJSON drops the enum prefix of operation statuses; numbers are already integers when whole.
func tolokaJSON(value interface{}, key string) interface{} {
	switch v := value.(type) {
	case map[string]interface{}:
		for k, item := range v {
			v[k] = tolokaJSON(item, k)
		}
	case []interface{}:
		for i, item := range v {
			v[i] = tolokaJSON(item, "")
		}
	case string:
		if key == "status" {
			return strings.TrimPrefix(v, "OPERATION_STATUS_")
		}
	}
	return value
}

func run(target, poolID string) error {
	conn, err := grpc.Dial(target, grpc.WithInsecure())
	if err != nil {
		return err
	}
	defer conn.Close()
	client := gatewayv1.NewTolokaGatewayClient(conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-caller-id", "example-go")

	// A client-chosen operation_id makes a retried call safe: the gateway creates the tasks once.
	request := &gatewayv1.CreateTasksRequest{OperationId: newUUID(), AllowDefaults: true}
	for _, image := range images {
		values := &structpb.Struct{Fields: map[string]*structpb.Value{
			"image": {Kind: &structpb.Value_StringValue{StringValue: image}},
		}}
		request.Tasks = append(request.Tasks, &gatewayv1.Task{PoolId: poolID, InputValues: values})
	}
	createCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := client.CreateTasks(createCtx, request); err != nil {
		return err
	}
	waitCtx, cancelWait := context.WithTimeout(ctx, 60*time.Second)
	defer cancelWait()
	waited, err := client.WaitOperation(waitCtx, &gatewayv1.WaitOperationRequest{
		OperationId: request.OperationId, Timeout: &duration.Duration{Seconds: 50}, IncludeLog: true,
	})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := (&jsonpb.Marshaler{OrigName: true}).Marshal(&buf, waited); err != nil {
		return err
	}
	var reply interface{}
	if err := json.Unmarshal(buf.Bytes(), &reply); err != nil {
		return err
	}
	out, err := json.MarshalIndent(tolokaJSON(reply, ""), "", "  ")
	if err != nil {
		return err
	}
	fmt.Println(string(out))
	return nil
}

func main() {
	defaultTarget := os.Getenv("GATEWAY_TARGET")
	if defaultTarget == "" {
		defaultTarget = "127.0.0.1:50051"
	}
	target := flag.String("target", defaultTarget, "gateway address HOST:PORT")
	poolID := flag.String("pool-id", "1", "pool of the tasks")
	flag.Parse()
	if err := run(*target, *poolID); err != nil {
		if s, ok := status.FromError(err); ok {
			fmt.Fprintf(os.Stderr, "%s: %s\n", s.Code(), s.Message())
		} else {
			fmt.Fprintln(os.Stderr, err)
		}
		os.Exit(1)
	}
}
