// Package fnproto is the codec for the mu function protocol: the messages a
// runtime and a function exchange over the function's WASI stdin and stdout.
//
// # Framing
//
// Every message travels as one frame:
//
//	u32 LE length | u16 LE kind | Borsh body
//
// where length counts the bytes that follow it (2 + len(body)), so the
// smallest frame is 6 bytes: a length of 2 and a kind with an empty body.
// The length lets a reader bound every read: a frame whose declared length
// exceeds the configured limit (DefaultMaxFrameSize unless told otherwise) is
// rejected with ErrFrameTooLarge before its body is read or any memory is
// allocated for it, and a declared length below 2 is ErrMalformed. The
// runtime passes its limit to every function in the environment variable
// FrameSizeEnv. ExecuteFunctionFrameLen and MaxExecuteFunctionBody relate a
// host's limits on a request's parts (RequestBounds) to a frame limit, so a
// host can accept only requests that fit one frame.
//
// # Directions
//
// Kind numbers are only unique within a direction: kind 1 is ExecuteFunction
// when the runtime writes to a function (ToFunction) and FatalError when a
// function writes to the runtime (FromFunction). Every decoding entry point
// therefore takes a Direction, and every Message reports its own Kind and
// Direction. Runtime → function messages: ExecuteFunction, the database
// replies (DbError … CasResult, KeyValuePageResult … BatchScanKeysPageResult),
// the storage replies (StorageError … StorageSignedURLResult) and HTTPResponse.
// Function → runtime messages: FatalError, FunctionResult, Log, the database
// operations (Put … CompareAndSwap, PutExpiring … BatchScanKeysPage), the
// storage operations (StoragePut … StorageSignURL) and HTTPRequest. An unknown
// (direction, kind) pair is ErrUnknownKind.
//
// # Messages
//
// Function → runtime, with the replies each may get (any db operation may
// also get DbError, any storage operation StorageError):
//
//	   1 FatalError        {error}                                   ends the request
//	   2 FunctionResult    {response}                                ends the request
//	   3 Log               {body, level}                             no reply
//	1001 Put               {table, key, value, is_atomic}            EmptyResult
//	1002 Get               {table, key}                              SingleResult
//	1003 Delete            {table, key, is_atomic}                   EmptyResult
//	1004 DeleteByPrefix    {table, key_prefix}                       EmptyResult
//	1005 Scan              {table, key_prefix, limit}                KeyValueListResult (first page only)
//	1006 ScanKeys          {table, key_prefix, limit}                ListResult (first page only)
//	1007 TableList         {table_prefix}                            ListResult (names)
//	1008 BatchPut          {table_key_values, is_atomic}             EmptyResult
//	1009 BatchGet          {table_keys}                              TableKeyValueListResult
//	1010 BatchDelete       {table_keys}                              EmptyResult
//	1011 BatchScan         {table_key_prefixes, limit}               TableKeyValueListResult (first pages)
//	1012 BatchScanKeys     {table_key_prefixes, limit}               TableKeyListResult (first pages)
//	1013 CompareAndSwap    {table, key, new_value, previous_value?}  CasResult
//	1014 PutExpiring       {table, key, value, is_atomic, ttl_seconds u64}  EmptyResult
//	1015 BatchPutExpiring  {table_key_values, is_atomic, ttl_seconds u64}   EmptyResult
//	1016 ScanPage          {table, key_prefix, limit, cursor}        KeyValuePageResult
//	1017 ScanKeysPage      {table, key_prefix, limit, cursor}        KeyPageResult
//	1018 BatchScanPage     {scans: [ScanSpec]}                       BatchScanPageResult
//	1019 BatchScanKeysPage {scans: [ScanSpec]}                       BatchScanKeysPageResult
//	2001 StoragePut        {storage, key, data}                      StorageEmptyResult
//	2002 StorageGet        {storage, key}                            StorageGetResult
//	2003 StorageDelete     {storage, key}                            StorageEmptyResult
//	2004 StorageList       {storage, prefix}                         ObjectListResult (must fit one frame)
//	2005 StorageGetRange   {storage, key, offset u64, length u32, if_match?}  StorageRangeResult
//	2006 StoragePutBegin   {storage, key, content_type, size? u64}   StorageUploadResult
//	2007 StoragePutChunk   {upload u32, data}                        StorageEmptyResult
//	2008 StoragePutEnd     {upload u32, abort bool}                  StorageObjectResult (abort: StorageEmptyResult)
//	2009 StorageListPage   {storage, prefix, limit u32, cursor}      ObjectPageResult
//	2010 StorageStat       {storage, key}                            StorageObjectInfoResult
//	2011 StorageSignURL    {storage, key, method u8, expires_in_seconds u32, max_bytes u64, content_type}  StorageSignedURLResult
//	3001 HTTPRequest       {method, url, headers, body}              HTTPResponse
//
// Runtime → function:
//
//	   1 ExecuteFunction         {function, request}
//	1001 DbError                 {error}
//	1002 SingleResult            {item?}
//	1003 ListResult              {list: [bytes]}
//	1004 KeyValueListResult      {list: [KeyValue]}
//	1005 TableKeyListResult      {list: [TableKey]}
//	1006 TableKeyValueListResult {list: [TableKeyValue]}
//	1007 EmptyResult             {}
//	1008 CasResult               {previous_value?, is_swapped}
//	1009 KeyValuePageResult      {list: [KeyValue], next_cursor}
//	1010 KeyPageResult           {list: [bytes], next_cursor}
//	1011 BatchScanPageResult     {results: [{table, list: [KeyValue], next_cursor}]}
//	1012 BatchScanKeysPageResult {results: [{table, keys: [bytes], next_cursor}]}
//	2001 StorageError            {error}
//	2002 StorageGetResult        {data?}
//	2003 StorageEmptyResult      {}
//	2004 ObjectListResult        {list: [{key, size u64}]}
//	2005 StorageRangeResult      {found bool, data, total_size u64, etag, content_type}
//	2006 StorageUploadResult     {upload u32}
//	2007 StorageObjectResult     {size u64, etag}
//	2008 ObjectPageResult        {objects: [ObjectInfo], next_cursor}
//	2009 StorageObjectInfoResult {info: ObjectInfo?}
//	2010 StorageSignedURLResult  {url, expires_at_unix u64}
//	3001 HTTPResponse            {status u16, headers, body, error?}
//
// where ScanSpec is {table, key_prefix, limit u32, cursor}, ObjectInfo is
// {key, size u64, etag, content_type, last_modified_unix_ms u64} and a
// SignURL method is the u8 enum GET (0) or PUT (1).
//
// Kinds are only ever added: the bodies of existing kinds never change, so
// a function built against an older SDK keeps working. The paging and
// expiry kinds (from-function 1014…1019, to-function 1009…1012) came after
// the first release; Scan, ScanKeys, BatchScan and BatchScanKeys carry no
// cursor and are answered with the first page only. The storage kinds for
// large objects (from-function 2005…2011, to-function 2005…2010) came
// next; StoragePut, StorageGet and StorageList still move a whole object
// or listing in one frame.
//
// # Large objects
//
// A frame is bounded (DefaultMaxFrameSize), an object is not. A function
// reads a large object with StorageGetRange, one range per request: the
// runtime may return fewer bytes than asked so the reply fits a frame, and
// the reader advances by len(data) until total_size. Passing the etag of
// the first reply as if_match makes every later reply either continue the
// same content or come back empty with the new etag: a change between
// ranges is detected, never spliced. A function writes a large object with
// StoragePutBegin, any number of StoragePutChunk and a StoragePutEnd: the
// runtime streams the chunks to the storage service as they arrive, and the
// object appears only when StoragePutEnd commits it; an upload aborted, or
// still open when the call ends, stores nothing. Upload handles belong to
// the call that opened them.
//
// # Cursors
//
// A page's next_cursor is opaque: a function passes it back unchanged with
// the same table and key_prefix to get the next page, and an empty
// next_cursor means the scan is complete. A cursor is a position, not a
// snapshot: the next page starts strictly after the last key returned, so
// keys written behind the cursor are not revisited and keys written ahead
// of it are seen. A page may hold fewer entries than its limit even when
// more follow.
//
// # Expiry
//
// ttl_seconds is a time to live in whole seconds from the write; the key
// disappears after it. It must be at least 1: the runtime answers 0 with
// DbError (plain Put and BatchPut never expire).
//
// Every known pair has a Class (ClassOf): control (the call itself), db,
// storage or http; a request and its replies share one, so a host can
// dispatch on the class. One table defines each pair's name (KindName),
// class and message type.
//
// # Entry points
//
// A function is either a WASI command, whose _start reads requests from
// stdin until it closes, or a WASI reactor that exports ExportInit (called
// once per instance) and ExportServe (called once per request); the frames
// are the same either way.
//
// # Borsh rules
//
// Bodies follow Borsh exactly, and the decoder accepts only the canonical
// encoding, so every body that decodes re-encodes to the same bytes:
//
//   - u8, u16, u32 and u64 are little endian;
//   - bool is one byte, 0 or 1; any other value is an error;
//   - string is a u32 byte length followed by UTF-8; invalid UTF-8 is an
//     error in both directions (the encoder refuses to produce it);
//   - []byte is a u32 length followed by the bytes;
//   - Option<T> (a nil-able pointer in Go) is a u8 tag, 0 (None) or 1
//     (Some, followed by T); any other tag is an error;
//   - Vec<T> (a Go slice) is a u32 count followed by the items;
//   - map<string,string> is a u32 count followed by (key, value) pairs in
//     strictly increasing byte order of key; the encoder sorts, the decoder
//     rejects unsorted or duplicate keys;
//   - an enum (LogLevel) is a u8 index, range checked;
//   - bytes left over after a body are an error.
//
// Struct fields are encoded in declaration order. A nil and an empty slice
// or map both encode as count 0, and count 0 decodes to nil.
//
// # Memory
//
// Decoding never trusts a declared size: every length is compared with the
// bytes remaining in the frame, and every element count with the remaining
// bytes divided by the smallest possible encoding of one element, before
// anything is allocated. Hostile input can therefore only make the decoder
// allocate in proportion to bytes it actually sent within the frame limit.
// The factor is small but not 1, because Go values are bigger than their
// encodings: about 6x for a list of empty byte strings (4 wire bytes become
// a 24-byte slice header) and up to about 10x for a map of one-byte keys.
// Decoded messages never alias the input: byte slices and strings are
// copies, so callers may reuse their buffers at once. The strings of one map
// or header list share a single allocation, so keeping any one of them
// keeps that whole collection's bytes alive.
//
// AppendFrame appends to the caller's buffer and allocates nothing when the
// buffer has room. Reader reuses one buffer across frames, grown only to a
// declared and limit-checked frame length. Reader and Writer are not safe
// for concurrent use; AppendFrame, Marshal, Unmarshal and ParseFrame are.
//
// # Errors
//
// Errors wrap ErrFrameTooLarge, ErrUnknownKind or ErrMalformed (match them
// with errors.Is) and name the message, the field and the sizes involved,
// for example:
//
//	fnproto: frame of 9000000 bytes exceeds limit of 8388608
//	fnproto: Put.key: length 4000 exceeds remaining 12 bytes
//	fnproto: ExecuteFunction.request.headers[2].value: invalid UTF-8
package fnproto
