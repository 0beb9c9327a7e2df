// aws-sdk-go-v2 client for credagent's interoperability suite (Debian's golang-github-aws-aws-sdk-go-v2-dev,
// built in GOPATH mode by run.sh; no Go module proxy involved).
//
//	credagent-interop-go --mode basic|creds|loop --endpoint URL --bucket NAME
//	                     [--duration S] [--interval S] [--size N] [--stop-file P]
//
// Credentials come from config.LoadDefaultConfig's default chain only: with nothing else set it
// picks the endpoint provider from AWS_CONTAINER_CREDENTIALS_FULL_URI. This SDK version (config
// 1.17) reads the AWS_CONTAINER_AUTHORIZATION_TOKEN env var, not the _FILE variable. Prints one
// JSON line on stdout.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// payload: the same xorshift64 generator as the Python, Node and Rust clients.
func payload(size int, seed uint64) []byte {
	x := seed*0x9E3779B97F4A7C15 | 1
	out := make([]byte, size)
	for i := range out {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		out[i] = byte(x >> 24)
	}
	return out
}

func now() float64 { return float64(time.Now().UnixNano()) / 1e9 }

func describe(err error) map[string]interface{} {
	var code interface{}
	var apiErr smithy.APIError
	var respErr *awshttp.ResponseError
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	} else if errors.As(err, &respErr) {
		// An answer whose error body could not be read (seen once: "failed to copy error
		// response body ... use of closed network connection"): the status is the code.
		code = fmt.Sprint(respErr.HTTPStatusCode())
	}
	return map[string]interface{}{"class": fmt.Sprintf("%T", err), "code": code, "message": err.Error()}
}

// credentialsError marks an error from resolving credentials (not from S3).
func credentialsError(err error) map[string]interface{} {
	d := describe(err)
	d["credentials_error"] = "aws.CredentialsCache.Retrieve"
	return d
}

type args struct {
	mode, endpoint, bucket, stopFile string
	duration, interval               float64
	size                             int
}

func build(ctx context.Context, a *args) (*s3.Client, aws.Config, error) {
	// Region, credentials: all from the environment and config files (the default chain).
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, cfg, err
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.EndpointResolver = s3.EndpointResolverFromURL(a.endpoint)
		o.UsePathStyle = true
		// No S3-level retries: every failed request must be visible to the rig.
		o.RetryMaxAttempts = 1
	})
	return client, cfg, nil
}

func credentialsView(ctx context.Context, cfg aws.Config) (map[string]interface{}, error) {
	c, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, err
	}
	token := "empty-string"
	if c.SessionToken != "" {
		token = "non-empty" // Go strings cannot tell an absent token from an empty one
	}
	view := map[string]interface{}{
		"access_key_id": c.AccessKeyID, "token": token, "token_len": len(c.SessionToken),
		"source": c.Source, "can_expire": c.CanExpire, "expiration": nil, "expiration_epoch": nil,
	}
	if c.CanExpire {
		view["expiration"] = c.Expires.UTC().Format("2006-01-02T15:04:05Z")
		view["expiration_epoch"] = float64(c.Expires.UnixNano()) / 1e9
	}
	return view, nil
}

func basic(ctx context.Context, a *args, out map[string]interface{}) error {
	client, cfg, err := build(ctx, a)
	if err != nil {
		return err
	}
	creds, err := credentialsView(ctx, cfg)
	if err != nil {
		out["error"] = credentialsError(err)
		return err
	}
	out["credentials"] = creds
	steps := map[string]interface{}{}
	out["steps"] = steps
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(a.bucket)}); err != nil {
		return err
	}
	steps["create_bucket"] = true
	key := "interop/object.bin"
	body := payload(a.size, 1)
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(a.bucket), Key: aws.String(key),
		Body: bytes.NewReader(body)}); err != nil {
		return err
	}
	steps["put"] = true
	got, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(a.bucket), Key: aws.String(key)})
	if err != nil {
		return err
	}
	data, err := io.ReadAll(got.Body)
	got.Body.Close()
	if err != nil {
		return err
	}
	steps["get_identical"] = bytes.Equal(data, body)
	listed, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(a.bucket)})
	if err != nil {
		return err
	}
	contains := false
	for _, o := range listed.Contents {
		if aws.ToString(o.Key) == key {
			contains = true
		}
	}
	steps["list_contains"] = contains
	pre, err := s3.NewPresignClient(client).PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(a.bucket),
		Key: aws.String(key)}, s3.WithPresignExpires(300*time.Second))
	if err != nil {
		return err
	}
	out["presigned_url"] = pre.URL
	out["key"] = key
	out["size"] = a.size
	return nil
}

func loop(ctx context.Context, a *args, out map[string]interface{}) {
	client, _, err := build(ctx, a)
	if err == nil {
		_, err = client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(a.bucket)})
	}
	if err != nil {
		out["setup_error"] = describe(err)
		return
	}
	deadline := time.Now().Add(time.Duration(a.duration * float64(time.Second)))
	events := [][]interface{}{}
	requests, failures := 0, 0
	for i := 1; time.Now().Before(deadline); i++ {
		if a.stopFile != "" {
			if _, err := os.Stat(a.stopFile); err == nil {
				break
			}
		}
		key := fmt.Sprintf("loop/%d", i)
		body := payload(1024+i%7, uint64(i))
		for _, op := range []string{"put", "get"} {
			t := now()
			requests++
			var err error
			if op == "put" {
				_, err = client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(a.bucket), Key: aws.String(key),
					Body: bytes.NewReader(body)})
			} else {
				var got *s3.GetObjectOutput
				got, err = client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(a.bucket), Key: aws.String(key)})
				if err == nil {
					var data []byte
					data, err = io.ReadAll(got.Body)
					got.Body.Close()
					if err == nil && !bytes.Equal(data, body) {
						err = errors.New("body mismatch")
					}
				}
			}
			if err != nil {
				failures++
				events = append(events, []interface{}{t, op, false, describe(err), now()})
				break // no GET of an object whose PUT failed
			}
			events = append(events, []interface{}{t, op, true, nil, now()})
		}
		time.Sleep(time.Duration(a.interval * float64(time.Second)))
	}
	out["requests"] = requests
	out["failures"] = failures
	out["events"] = events
}

func main() {
	a := &args{}
	flag.StringVar(&a.mode, "mode", "basic", "basic|creds|loop")
	flag.StringVar(&a.endpoint, "endpoint", "", "S3 endpoint URL")
	flag.StringVar(&a.bucket, "bucket", "", "bucket")
	flag.StringVar(&a.stopFile, "stop-file", "", "stop looping once this file exists")
	flag.Float64Var(&a.duration, "duration", 60, "loop duration, seconds")
	flag.Float64Var(&a.interval, "interval", 0.25, "pause between loop iterations, seconds")
	flag.IntVar(&a.size, "size", 70001, "object size for basic")
	flag.Parse()
	started := time.Now()
	ctx := context.Background()
	out := map[string]interface{}{"client": "go-v2", "mode": a.mode}
	var err error
	switch a.mode {
	case "basic":
		err = basic(ctx, a, out)
	case "creds":
		var cfg aws.Config
		if _, cfg, err = build(ctx, a); err == nil {
			var view map[string]interface{}
			if view, err = credentialsView(ctx, cfg); err == nil {
				out["credentials"] = view
			} else {
				out["error"] = credentialsError(err)
			}
		}
	case "loop":
		loop(ctx, a, out)
	default:
		err = fmt.Errorf("unknown mode %s", a.mode)
	}
	out["ok"] = err == nil
	if err != nil {
		if _, set := out["error"]; !set {
			out["error"] = describe(err)
		}
	}
	out["elapsed"] = time.Since(started).Seconds()
	line, _ := json.Marshal(out)
	fmt.Println(strings.TrimSpace(string(line)))
}
