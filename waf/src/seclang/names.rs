//! SecLang's names for variables, operators and transformations, mapped to the AST's enums.
//!
//! The parser keeps its own tables (rather than calling the other modules' `from_name`) so the
//! grammar is defined in one place and parsing depends on nothing that evaluates.

use crate::ast::{Collection, OperatorName, TransformName};

/// Variable names (upper case, as ModSecurity writes them) and what they map to.
const VARIABLES: &[(&str, Collection)] = &[
    ("ARGS", Collection::Args),
    ("ARGS_GET", Collection::ArgsGet),
    ("ARGS_POST", Collection::ArgsPost),
    ("ARGS_NAMES", Collection::ArgsNames),
    ("ARGS_GET_NAMES", Collection::ArgsGetNames),
    ("ARGS_POST_NAMES", Collection::ArgsPostNames),
    ("ARGS_COMBINED_SIZE", Collection::ArgsCombinedSize),
    ("REQUEST_HEADERS", Collection::RequestHeaders),
    ("REQUEST_HEADERS_NAMES", Collection::RequestHeadersNames),
    ("REQUEST_COOKIES", Collection::RequestCookies),
    ("REQUEST_COOKIES_NAMES", Collection::RequestCookiesNames),
    ("REQUEST_FILENAME", Collection::RequestFilename),
    ("REQUEST_BASENAME", Collection::RequestBasename),
    ("REQUEST_URI", Collection::RequestUri),
    ("REQUEST_URI_RAW", Collection::RequestUriRaw),
    ("REQUEST_LINE", Collection::RequestLine),
    ("REQUEST_METHOD", Collection::RequestMethod),
    ("REQUEST_PROTOCOL", Collection::RequestProtocol),
    ("QUERY_STRING", Collection::QueryString),
    ("REQUEST_BODY", Collection::RequestBody),
    ("REQUEST_BODY_LENGTH", Collection::RequestBodyLength),
    ("REQBODY_ERROR", Collection::ReqbodyError),
    ("REQBODY_ERROR_MSG", Collection::ReqbodyErrorMsg),
    ("REQBODY_PROCESSOR", Collection::ReqbodyProcessor),
    ("REQBODY_PROCESSOR_ERROR", Collection::ReqbodyProcessorError),
    (
        "REQBODY_PROCESSOR_ERROR_MSG",
        Collection::ReqbodyProcessorErrorMsg,
    ),
    ("INBOUND_DATA_ERROR", Collection::InboundDataError),
    ("URLENCODED_ERROR", Collection::UrlencodedError),
    ("FULL_REQUEST", Collection::FullRequest),
    ("FULL_REQUEST_LENGTH", Collection::FullRequestLength),
    ("FILES", Collection::Files),
    ("FILES_NAMES", Collection::FilesNames),
    ("FILES_SIZES", Collection::FilesSizes),
    ("FILES_COMBINED_SIZE", Collection::FilesCombinedSize),
    ("FILES_TMPNAMES", Collection::FilesTmpnames),
    ("FILES_TMP_CONTENT", Collection::FilesTmpContent),
    ("MULTIPART_STRICT_ERROR", Collection::MultipartStrictError),
    (
        "MULTIPART_UNMATCHED_BOUNDARY",
        Collection::MultipartUnmatchedBoundary,
    ),
    (
        "MULTIPART_BOUNDARY_QUOTED",
        Collection::MultipartBoundaryQuoted,
    ),
    (
        "MULTIPART_BOUNDARY_WHITESPACE",
        Collection::MultipartBoundaryWhitespace,
    ),
    ("MULTIPART_DATA_AFTER", Collection::MultipartDataAfter),
    ("MULTIPART_DATA_BEFORE", Collection::MultipartDataBefore),
    (
        "MULTIPART_FILE_LIMIT_EXCEEDED",
        Collection::MultipartFileLimitExceeded,
    ),
    (
        "MULTIPART_HEADER_FOLDING",
        Collection::MultipartHeaderFolding,
    ),
    (
        "MULTIPART_INVALID_HEADER_FOLDING",
        Collection::MultipartInvalidHeaderFolding,
    ),
    ("MULTIPART_INVALID_PART", Collection::MultipartInvalidPart),
    (
        "MULTIPART_INVALID_QUOTING",
        Collection::MultipartInvalidQuoting,
    ),
    ("MULTIPART_LF_LINE", Collection::MultipartLfLine),
    ("MULTIPART_CRLF_LF_LINES", Collection::MultipartCrlfLfLines),
    (
        "MULTIPART_MISSING_SEMICOLON",
        Collection::MultipartMissingSemicolon,
    ),
    // ModSecurity's alias of the above.
    (
        "MULTIPART_SEMICOLON_MISSING",
        Collection::MultipartMissingSemicolon,
    ),
    ("MULTIPART_PART_HEADERS", Collection::MultipartPartHeaders),
    ("MULTIPART_FILENAME", Collection::MultipartFilename),
    ("MULTIPART_NAME", Collection::MultipartName),
    ("XML", Collection::Xml),
    ("TX", Collection::Tx),
    ("MATCHED_VAR", Collection::MatchedVar),
    ("MATCHED_VAR_NAME", Collection::MatchedVarName),
    ("MATCHED_VARS", Collection::MatchedVars),
    ("MATCHED_VARS_NAMES", Collection::MatchedVarsNames),
    ("REMOTE_ADDR", Collection::RemoteAddr),
    ("REMOTE_HOST", Collection::RemoteHost),
    ("REMOTE_PORT", Collection::RemotePort),
    ("REMOTE_USER", Collection::RemoteUser),
    ("SERVER_ADDR", Collection::ServerAddr),
    ("SERVER_NAME", Collection::ServerName),
    ("SERVER_PORT", Collection::ServerPort),
    ("UNIQUE_ID", Collection::UniqueId),
    ("DURATION", Collection::Duration),
    ("HIGHEST_SEVERITY", Collection::HighestSeverity),
    ("ENV", Collection::Env),
    ("TIME", Collection::Time),
    ("TIME_DAY", Collection::TimeDay),
    ("TIME_EPOCH", Collection::TimeEpoch),
    ("TIME_HOUR", Collection::TimeHour),
    ("TIME_MIN", Collection::TimeMin),
    ("TIME_MON", Collection::TimeMon),
    ("TIME_SEC", Collection::TimeSec),
    ("TIME_WDAY", Collection::TimeWday),
    ("TIME_YEAR", Collection::TimeYear),
    ("AUTH_TYPE", Collection::AuthType),
    ("RULE", Collection::Rule),
    ("STATUS_LINE", Collection::StatusLine),
    ("RESPONSE_HEADERS", Collection::ResponseHeaders),
    ("RESPONSE_HEADERS_NAMES", Collection::ResponseHeadersNames),
    ("RESPONSE_BODY", Collection::ResponseBody),
    ("RESPONSE_STATUS", Collection::ResponseStatus),
    ("RESPONSE_PROTOCOL", Collection::ResponseProtocol),
    ("RESPONSE_CONTENT_TYPE", Collection::ResponseContentType),
    ("RESPONSE_CONTENT_LENGTH", Collection::ResponseContentLength),
    ("OUTBOUND_DATA_ERROR", Collection::OutboundDataError),
    ("WEBSERVER_ERROR_LOG", Collection::Webserver),
    ("IP", Collection::Ip),
    ("SESSION", Collection::Session),
    ("USER", Collection::User),
    ("GLOBAL", Collection::Global),
    ("RESOURCE", Collection::Resource),
    ("GEO", Collection::Geo),
];

/// The variable named `name` (case-insensitive).
pub(super) fn variable(name: &str) -> Option<Collection> {
    VARIABLES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, c)| c)
}

/// Does `c` have members that `:key` / `:/regex/` can select?
pub(super) fn has_members(c: Collection) -> bool {
    use Collection::*;
    matches!(
        c,
        Args | ArgsGet
            | ArgsPost
            | ArgsNames
            | ArgsGetNames
            | ArgsPostNames
            | RequestHeaders
            | RequestHeadersNames
            | RequestCookies
            | RequestCookiesNames
            | Files
            | FilesNames
            | FilesSizes
            | FilesTmpnames
            | FilesTmpContent
            | MultipartPartHeaders
            | MultipartFilename
            | MultipartName
            | Xml
            | Tx
            | MatchedVars
            | MatchedVarsNames
            | Env
            | Rule
            | ResponseHeaders
            | ResponseHeadersNames
            | Ip
            | Session
            | User
            | Global
            | Resource
            | Geo
    )
}

/// Operator names (without `@`) and whether they take an argument.
const OPERATORS: &[(&str, OperatorName, bool)] = &[
    ("rx", OperatorName::Rx, true),
    ("pm", OperatorName::Pm, true),
    ("pmFromFile", OperatorName::PmFromFile, true),
    ("pmf", OperatorName::Pmf, true),
    ("detectSQLi", OperatorName::DetectSqli, false),
    ("detectXSS", OperatorName::DetectXss, false),
    ("validateByteRange", OperatorName::ValidateByteRange, true),
    (
        "validateUrlEncoding",
        OperatorName::ValidateUrlEncoding,
        false,
    ),
    (
        "validateUtf8Encoding",
        OperatorName::ValidateUtf8Encoding,
        false,
    ),
    ("within", OperatorName::Within, true),
    ("streq", OperatorName::Streq, true),
    ("beginsWith", OperatorName::BeginsWith, true),
    ("endsWith", OperatorName::EndsWith, true),
    ("contains", OperatorName::Contains, true),
    ("containsWord", OperatorName::ContainsWord, true),
    ("strmatch", OperatorName::StrMatch, true),
    ("eq", OperatorName::Eq, true),
    ("ge", OperatorName::Ge, true),
    ("gt", OperatorName::Gt, true),
    ("lt", OperatorName::Lt, true),
    ("le", OperatorName::Le, true),
    ("ipMatch", OperatorName::IpMatch, true),
    ("ipMatchFromFile", OperatorName::IpMatchFromFile, true),
    // ModSecurity's alias of `@ipMatchFromFile`.
    ("ipMatchF", OperatorName::IpMatchFromFile, true),
    (
        "unconditionalMatch",
        OperatorName::UnconditionalMatch,
        false,
    ),
    ("noMatch", OperatorName::NoMatch, false),
    ("geoLookup", OperatorName::GeoLookup, false),
    ("rbl", OperatorName::Rbl, true),
];

/// The operator `@name` (case-insensitive, `name` without the `@`) and whether it takes an
/// argument.
pub(super) fn operator(name: &str) -> Option<(OperatorName, bool)> {
    OPERATORS
        .iter()
        .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, o, takes)| (o, takes))
}

/// Transformation names as SecLang writes them.
const TRANSFORMS: &[(&str, TransformName)] = &[
    ("none", TransformName::None),
    ("base64Decode", TransformName::Base64Decode),
    ("base64DecodeExt", TransformName::Base64DecodeExt),
    ("base64Encode", TransformName::Base64Encode),
    ("cmdLine", TransformName::CmdLine),
    ("compressWhitespace", TransformName::CompressWhitespace),
    ("cssDecode", TransformName::CssDecode),
    ("escapeSeqDecode", TransformName::EscapeSeqDecode),
    ("hexDecode", TransformName::HexDecode),
    ("hexEncode", TransformName::HexEncode),
    ("htmlEntityDecode", TransformName::HtmlEntityDecode),
    ("jsDecode", TransformName::JsDecode),
    ("length", TransformName::Length),
    ("lowercase", TransformName::Lowercase),
    ("uppercase", TransformName::Uppercase),
    ("md5", TransformName::Md5),
    ("normalizePath", TransformName::NormalizePath),
    // ModSecurity accepts both spellings.
    ("normalisePath", TransformName::NormalizePath),
    ("normalizePathWin", TransformName::NormalizePathWin),
    ("normalisePathWin", TransformName::NormalizePathWin),
    ("parityEven7bit", TransformName::ParityEven7bit),
    ("parityOdd7bit", TransformName::ParityOdd7bit),
    ("parityZero7bit", TransformName::ParityZero7bit),
    ("removeComments", TransformName::RemoveComments),
    ("removeCommentsChar", TransformName::RemoveCommentsChar),
    ("removeNulls", TransformName::RemoveNulls),
    ("removeWhitespace", TransformName::RemoveWhitespace),
    ("replaceComments", TransformName::ReplaceComments),
    ("replaceNulls", TransformName::ReplaceNulls),
    ("sha1", TransformName::Sha1),
    ("sqlHexDecode", TransformName::SqlHexDecode),
    ("trim", TransformName::Trim),
    ("trimLeft", TransformName::TrimLeft),
    ("trimRight", TransformName::TrimRight),
    ("urlDecode", TransformName::UrlDecode),
    ("urlDecodeUni", TransformName::UrlDecodeUni),
    ("urlEncode", TransformName::UrlEncode),
    ("utf8toUnicode", TransformName::Utf8ToUnicode),
];

/// The transformation `t:name` (case-insensitive).
pub(super) fn transform(name: &str) -> Option<TransformName> {
    TRANSFORMS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, t)| t)
}
