// Azure Monitor alerts on the hub: sites dropping off, the upstream message flow drying up, and throttling.
param iotHubId string
param actionGroupId string
param expectedConnectedDevices int
param minMessagesPerHour int
param tags object

var alerts = [
  {
    name: 'connected-devices-drop'
    description: 'Fewer IoT Edge devices connected than sites expected online'
    severity: 1
    metric: 'connectedDeviceCount'
    aggregation: 'Average'
    operator: 'LessThan'
    threshold: expectedConnectedDevices
    window: 'PT15M'
    frequency: 'PT5M'
  }
  {
    name: 'telemetry-drop'
    description: 'Upstream messages (capability events and summaries) fell below the fleet\'s usual hourly count'
    severity: 2
    metric: 'd2c.telemetry.ingress.success'
    aggregation: 'Total'
    operator: 'LessThan'
    threshold: minMessagesPerHour
    window: 'PT1H'
    frequency: 'PT15M'
  }
  {
    name: 'throttling'
    description: 'IoT Hub throttled device-to-cloud sends: the units no longer cover the fleet'
    severity: 2
    metric: 'd2c.telemetry.ingress.sendThrottle'
    aggregation: 'Total'
    operator: 'GreaterThan'
    threshold: 0
    window: 'PT15M'
    frequency: 'PT5M'
  }
]

resource metricAlerts 'Microsoft.Insights/metricAlerts@2018-03-01' = [for alert in alerts: {
  name: '${last(split(iotHubId, '/'))}-${alert.name}'
  location: 'global'
  tags: tags
  properties: {
    description: alert.description
    severity: alert.severity
    enabled: true
    scopes: [
      iotHubId
    ]
    evaluationFrequency: alert.frequency
    windowSize: alert.window
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: alert.name
          metricNamespace: 'Microsoft.Devices/IotHubs'
          metricName: alert.metric
          timeAggregation: alert.aggregation
          operator: alert.operator
          threshold: alert.threshold
        }
      ]
    }
    autoMitigate: true
    actions: [
      {
        actionGroupId: actionGroupId
      }
    ]
  }
}]
