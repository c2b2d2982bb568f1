// Package codegen declares the C# package settings pulumi-docker-build puts in its schema.
package codegen

// CSharpPackageInfo is the schema's language.csharp entry.
type CSharpPackageInfo struct {
	RespectSchemaVersion bool              `json:"respectSchemaVersion,omitempty"`
	PackageReferences    map[string]string `json:"packageReferences,omitempty"`
}
